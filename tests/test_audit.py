"""The audit trail: append-only by trigger, hash-chained, verified by `tradepipe audit verify`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.helpers import tradepipe, write_config
from tradepipe.core.audit import GENESIS, event_hash, verify_chain


def journal_with_trades(tmp_path):
    config = write_config(tmp_path, subscription="auto_submit = false\n")
    tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","quantity":2,"signalPrice":10}')
    (pending,) = json.loads(tradepipe(config, "pending", "--json").stdout)
    tradepipe(config, "approve", str(pending["id"]))
    return config, tmp_path / "journal.db"


def test_every_step_of_a_signal_is_an_event_in_order(tmp_path):
    config, _ = journal_with_trades(tmp_path)
    events = json.loads(tradepipe(config, "audit", "--json").stdout)
    trail = [(e["kind"], e["detail"].get("status") or e["detail"].get("action")) for e in events]
    assert trail == [
        ("signal", "accepted"),
        ("delivery", "queued"),
        ("delivery", "planned"),
        ("delivery", "pending_approval"),
        ("signal", "processed"),
        ("operator", "approve"),
        ("delivery", "planned"),
        ("order", "submitting"),
        ("order", "filled"),
        ("fill", None),
        ("delivery", "submitted"),
    ]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    ok = tradepipe(config, "audit", "verify")
    assert ok.returncode == 0 and f"{len(events)} events, chain intact" in ok.stdout


@pytest.mark.parametrize("statement", ["UPDATE events SET kind = 'x'", "DELETE FROM events"])
def test_the_journal_refuses_to_change_the_trail(tmp_path, statement):
    _, path = journal_with_trades(tmp_path)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="the audit trail is append-only"):
        db.execute(statement)


def tamper(path, *statements):
    """What someone with write access does: drop the triggers, then edit."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("statements", "problem"),
    [
        (
            [
                "UPDATE events SET detail = replace(detail, 'quantity\":\"2', 'quantity\":\"20')"
                " WHERE kind = 'order' AND detail LIKE '%submitting%'"
            ],
            "event 8 (order tp",
        ),
        (["DELETE FROM events WHERE id = 4"], "event 5 (signal signal 1): event 4 is missing"),
        (["DELETE FROM events WHERE id >= 4 AND id <= 6"], "event 4–6 is missing"),
    ],
)
def test_audit_verify_names_the_first_broken_event(tmp_path, statements, problem):
    config, path = journal_with_trades(tmp_path)
    tamper(path, *statements)
    result = tradepipe(config, "audit", "verify", check=False)
    assert result.returncode == 1
    assert problem in result.stderr
    if "UPDATE" in statements[0]:
        assert "its contents were changed after it was written" in result.stderr


def test_a_rewritten_link_is_found_even_when_the_row_hash_is_recomputed():
    events = []
    prev = GENESIS
    for i in (1, 2, 3):
        event = {"id": i, "at": "t", "kind": "k", "subject": "s", "detail": "{}"}
        event |= {"prev_hash": prev, "hash": event_hash(prev, event)}
        events.append(event)
        prev = event["hash"]
    assert verify_chain(events).ok and verify_chain(events).head == prev
    forged = dict(events[1], detail='{"x":1}')
    forged["hash"] = event_hash(forged["prev_hash"], forged)  # a consistent row 2 ...
    verdict = verify_chain([events[0], forged, events[2]])
    assert verdict.broken_at == 3  # ... breaks row 3's link
    assert "does not follow the event before it" in verdict.problem
