"""No passphrase survives redaction, however the body spells it (SPEC §3)."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.redaction import MASK, redact_body, scrub

SECRET = "s3cret-Pass"


def _escaped(text: str, every: int) -> str:
    """`text` with every `every`-th character as a JSON \\u escape."""
    return "".join(f"\\u{ord(c):04x}" if i % every == 0 else c for i, c in enumerate(text))


def json_unescaped(text: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


@given(
    st.text(max_size=40),
    st.text(max_size=40),
    st.sampled_from([1, 2, 3, 100]),
    st.sampled_from(['"passphrase":"{}"', "'passphrase':'{}'", "“passphrase”:“{}”", "x{}x", "{}"]),
)
def test_the_secret_never_survives_in_any_spelling(before, after, every, shape):
    body = before + shape.format(_escaped(SECRET, every)) + after
    redacted = redact_body(body, SECRET)
    assert SECRET not in redacted
    assert SECRET not in json_unescaped(redacted)


def test_an_escape_behind_a_backslash_is_masked_for_lenient_readers_too():
    # hypothesis found it: JSON reads "\\\\u0073..." as a backslash and the text "u0073...",
    # a reader that only decodes \\u escapes reads the secret
    body = "\\" + _escaped(SECRET, 1)
    assert SECRET not in json_unescaped(redact_body(body, SECRET))


def test_a_parsed_body_keeps_everything_but_the_passphrase():
    body = {"ticker": "AAPL", "passphrase": SECRET, "comment": f"x{SECRET}"}
    redacted = json.loads(redact_body(json.dumps(body), SECRET, parsed=body))
    assert redacted == {"ticker": "AAPL", "passphrase": MASK, "comment": f"x{MASK}"}


def test_a_wrong_passphrase_in_a_malformed_body_is_blanked_too():
    assert redact_body("{'passphrase': 'guess1', 'ticker': 'AAPL'", None) == (
        "{'passphrase': ***, 'ticker': 'AAPL'"
    )


def test_scrub_makes_lone_surrogates_storable():
    assert scrub("a\udc80b").encode() == b"a\\udc80b"
