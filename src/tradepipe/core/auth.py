"""The optional extra layers of webhook authentication (SPEC §3): source-IP allowlist behind
trusted proxies, and Standard Webhooks HMAC signatures for the user's own code.

Pure: headers, addresses and the current time are arguments. Networks and keys arrive parsed
(config parses them once; the webhook must not re-parse them on every request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SIGNATURE_TOLERANCE = 300  # seconds, as the Standard Webhooks reference libraries use


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The sender's address: X-Forwarded-For is believed only from a trusted proxy.

    Walk the chain from the nearest hop backwards and stop at the first address that is not a
    trusted proxy; anything further left could have been written by the sender.
    """
    address = peer or ""
    if not forwarded_for or not _in(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _in(hop, trusted):
            break
    return address


def is_allowed(address: str, allowed: Sequence[Network]) -> bool:
    return not allowed or _in(address, allowed)


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def verify_signature(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Check Standard Webhooks headers; None if valid, else what is wrong."""
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", message_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing:
        return f"missing header {', '.join(missing)}"
    assert message_id and timestamp and signatures
    try:
        sent_at = int(timestamp)
    except ValueError:
        # Not quoted back: the header is unauthenticated, and it would land in the journal.
        return "webhook-timestamp must be whole seconds since the epoch"
    if abs(now - sent_at) > SIGNATURE_TOLERANCE:
        return f"webhook-timestamp {sent_at} is more than {SIGNATURE_TOLERANCE} s from now"
    expected = sign(key, message_id, sent_at, body)
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        # As bytes: header text may hold any character (str compare_digest takes ASCII only).
        given = value.encode("utf-8", "surrogateescape")
        if version == "v1" and hmac.compare_digest(given, expected.encode()):
            return None
    return "webhook-signature does not match"


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The v1 signature: base64 HMAC-SHA256 of "id.timestamp.body" under the key (the
    strategy's `webhook_key`: a "whsec_" secret base64-decoded, else its raw bytes)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
