"""The audit trail's hash chain (SPEC §11): each event's hash covers its contents and the hash
of the event before it, so an edited, removed or inserted row breaks the chain from there on.

Pure: hashing and checking only; the journal appends events inside the transactions of the
writes they record, and triggers refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("id", "at", "kind", "subject", "detail")


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's fields, one per line."""
    text = "\n".join([prev_hash, *(str(event[name]) for name in FIELDS)])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int
    head: str  # the last good hash: note it somewhere else to detect a rewritten chain
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(events: Iterable[Mapping[str, Any]]) -> Verdict:
    """Walk the events in id order; the first one that does not fit ends the walk."""
    prev, expected_id, count = GENESIS, 1, 0
    for event in events:
        where = f"event {event['id']} ({event['kind']} {event['subject']})"
        if event["id"] != expected_id:
            missing = (
                f"{expected_id}"
                if event["id"] == expected_id + 1
                else f"{expected_id}–{event['id'] - 1}"
            )
            return Verdict(count, prev, event["id"], f"{where}: event {missing} is missing")
        if event["prev_hash"] != prev:
            return Verdict(
                count, prev, event["id"], f"{where}: does not follow the event before it"
            )
        if event_hash(prev, event) != event["hash"]:
            return Verdict(
                count, prev, event["id"], f"{where}: its contents were changed after it was written"
            )
        prev, expected_id, count = event["hash"], expected_id + 1, count + 1
    return Verdict(count, prev)
