"""What a webhook request must pass before it is a signal (SPEC §3): the body read whole within
its limit, a strategy's guards, the passphrase, the signal's age and clock; and the one JSON
shape every refusal is answered in. `webhook` is the handler that runs these in order."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradepipe.core.auth import Network
from tradepipe.core.redaction import redact_body
from tradepipe.core.signal import FieldError, ParsedSignal, parse_signal

MAX_BODY = 64 * 1024

AUTH_FAILURES = frozenset({"passphrase-required", "invalid-passphrase"})


class Rejection(Exception):
    """A request we answer with a 4xx; journaled unless `journal` is False."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: tuple[FieldError, ...] = (),
        *,
        journal: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.journal = journal


def error_body(code: str, message: str, errors: tuple[FieldError, ...] = ()) -> dict[str, Any]:
    """The one JSON shape of every webhook error."""
    return {
        "ok": False,
        "code": code,
        "message": message,
        "errors": [{"field": e.field, "message": e.message} for e in errors],
    }


@dataclass(frozen=True, slots=True)
class Guards:
    """A strategy's optional authentication layers, parsed."""

    allowed_ips: tuple[Network, ...]
    trusted_proxies: tuple[Network, ...]
    webhook_key: bytes | None


def parse_body(body: bytes, passphrase: str | None) -> ParsedSignal:
    """The body as a signal, the passphrase checked first; a 4xx naming every problem."""
    try:
        # UTF-8 only, as the signal parser reads it (json.loads(bytes) would also take
        # UTF-16/32, which the parser and the redaction below do not).
        decoded: Any = json.loads(body.decode("utf-8").removeprefix("\ufeff"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        decoded = None
        parsed = parse_signal(body)
    else:
        if passphrase is not None:
            given = decoded.get("passphrase") if isinstance(decoded, dict) else None
            if given is None:
                raise Rejection(401, "passphrase-required", "this strategy needs a passphrase")
            if not isinstance(given, str) or not hmac.compare_digest(
                given.encode("utf-8", "surrogatepass"), passphrase.encode()
            ):
                raise Rejection(403, "invalid-passphrase", "the passphrase does not match")
        parsed = parse_signal(decoded)
    if not parsed.ok:
        code = "malformed-json" if decoded is None else "invalid-payload"
        # A passphrase value never goes back out, not even inside an error message.
        parsed = ParsedSignal(
            None,
            tuple(
                FieldError(e.field, "must be a string") if e.field == "passphrase" else e
                for e in parsed.errors
            ),
            parsed.warnings,
        )
        problems = "; ".join(f"{e.field or 'body'}: {e.message}" for e in parsed.errors)
        raise Rejection(400, code, problems, parsed.errors)
    return parsed


def check_age(signal: Any, max_age: Decimal | None, now: datetime) -> None:
    if max_age is None or signal.time is None:
        return
    age = (now - signal.time).total_seconds()
    if age > float(max_age):
        raise Rejection(
            400,
            "stale-signal",
            f"the signal is {age:.0f} s old; max_signal_age is {max_age} s",
            (FieldError("time", f"older than max_signal_age {max_age} s (age {age:.0f} s)"),),
        )


CLOCK_SKEW_WARNING = 5.0  # seconds a signal's time may run ahead of ours before we say so


def clock_skew_warning(sent: datetime | None, received: datetime) -> str | None:
    """A signal stamped in the future means one of the two clocks is wrong; max_signal_age
    (and anyone reading the journal) depends on them agreeing."""
    if sent is None:
        return None
    ahead = (sent - received).total_seconds()
    if ahead <= CLOCK_SKEW_WARNING:
        return None
    return (
        f"the signal's time is {ahead:.0f} s ahead of this server's clock; check that NTP"
        " runs here (max_signal_age relies on the two clocks agreeing)"
    )


async def read_body(request: web.Request) -> bytes:
    """The whole body, however many segments or chunks it arrives in, up to one byte past the
    limit (enough to know it is too large without reading a flood)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(parts)


def redacted(body: bytes, secret: str | None, *, has_passphrase: bool | None = None) -> str:
    """The body as text with any passphrase value blanked out: secrets never reach the journal.

    One that is not UTF-8 is not stored at all (its text cannot be searched)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(body)} bytes that are not UTF-8; not stored>"
    if has_passphrase is False and secret is None:
        return text  # parsed, and no passphrase in it: the hot path stops here
    try:
        decoded = json.loads(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError):
        decoded = None
    return redact_body(text, secret, parsed=decoded)


def cause(error: BaseException) -> str:
    """The name of what broke a body (aiohttp wraps it; its message quotes raw bytes)."""
    return type(error.__cause__ or error).__name__
