"""Standard Webhooks signatures (core/auth.py): what a refusal says, and what it never repeats."""

from __future__ import annotations

import pytest

from tradepipe.core.auth import sign, verify_signature

KEY = b"k" * 32
BODY = b'{"ticker":"AAPL","action":"buy"}'
NOW = 1_800_000_000


def headers(timestamp: str) -> dict[str, str]:
    return {"webhook-id": "m1", "webhook-timestamp": timestamp, "webhook-signature": "v1,x"}


@pytest.mark.parametrize("timestamp", ["s3cret-Pass" * 700, "12:30", "1e9"])
def test_an_unreadable_timestamp_is_refused_without_quoting_it(timestamp):
    # the header is unauthenticated and the reason lands in the journal and the log
    why = verify_signature(KEY, headers(timestamp), BODY, NOW)
    assert why == "webhook-timestamp must be whole seconds since the epoch"


def test_a_signature_made_with_the_key_passes():
    signature = f"v1,{sign(KEY, 'm1', NOW, BODY)}"
    given = {"webhook-id": "m1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert verify_signature(KEY, given, BODY, NOW) is None
