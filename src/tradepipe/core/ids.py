"""Deterministic client order ids: the same (signal, subscription, leg) always gives the same id.

That determinism is what lets a retry or a restart ask the broker "do you have this order?"
instead of sending it again (SPEC §8). Pure: the journal's instance id is an argument.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 32
_ALLOWED = re.compile(r"^[A-Za-z0-9-]+$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

LEG_CODES = {
    "exit": "x",
    "entry": "e",
    "take_profit": "t",
    "stop_loss": "s",
    "cancel": "c",
    "breakeven": "b",
}
_LEG = re.compile(r"([a-z_]+)(?:-([1-9][0-9]*))?")


def base36(number: int) -> str:
    if number < 0:
        raise ValueError(f"base36 takes a non-negative number (got {number})")
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
        if number == 0:
            return digits


def client_order_id(
    instance: str, signal_id: int, subscription: str, leg: str, attempt: int = 0
) -> str:
    """`tp` + journal instance + signal + subscription hash + leg (+ attempt for re-executions).

    The journal instance keeps ids unique when a journal is replaced, so a broker that remembers
    old ids (Alpaca refuses a reused client_order_id) never confuses two journals' orders.
    """
    subscription_hash = hashlib.sha256(subscription.encode()).hexdigest()[:6]
    found = _LEG.fullmatch(leg)  # "breakeven-2": the second stop one signal moves
    if found is None or found[1] not in LEG_CODES:
        raise ValueError(f"unknown order leg {leg!r}")
    index = base36(int(found[2])) if found[2] else ""
    suffix = LEG_CODES[found[1]] + index + (f"r{base36(attempt)}" if attempt else "")
    identifier = f"tp{instance[:4]}-{base36(signal_id)}-{subscription_hash}-{suffix}"
    if len(identifier) > MAX_LENGTH or not _ALLOWED.match(identifier):
        raise ValueError(f"client order id {identifier!r} breaks the 32-character rule")
    return identifier


def operator_order_id(instance: str, action_id: int, account: str, ticker: str) -> str:
    """An order an operator's command places (flatten): `F` + the audit event of the command.
    Capital F never appears in the base-36 signal ids, so the two can never collide."""
    scope = hashlib.sha256(f"{account}\0{ticker}".encode()).hexdigest()[:6]
    identifier = f"tp{instance[:4]}-F{base36(action_id)}-{scope}-x"
    if len(identifier) > MAX_LENGTH:
        raise ValueError(f"client order id {identifier!r} breaks the 32-character rule")
    return identifier


def sibling_id(client_id: str, leg: str) -> str:
    """The id `client_order_id` gives another leg of the same signal and subscription (the
    bracket children of an entry, or the entry of a child): brokers that name bracket legs
    themselves (Alpaca's uuids) answer for them under ours."""
    prefix, _, suffix = client_id.rpartition("-")
    return f"{prefix}-{LEG_CODES[leg]}{suffix[1:]}"


def leg_of(client_id: str) -> str | None:
    """Which leg a client order id names ("entry", "take_profit", …), or None if it is not
    one of ours with a single-letter leg code."""
    prefix, _, suffix = client_id.rpartition("-")
    if not prefix.startswith("tp") or not suffix:
        return None
    return next((leg for leg, code in LEG_CODES.items() if code == suffix[0]), None)
