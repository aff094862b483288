"""Notifications (SPEC §14): the pure decisions as tables, the `[[notify]]` config, and the
sender in-process against a real journal, real Apprise and a local receiver, with a clock the
test moves (coalescing, back-off, giving up after 24 h)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import FixedClock, free_port, write_config
from tests.notify_receiver import Receiver, notify_table
from tests.test_engine import Harness, run
from tradepipe.brokers.paper.broker import Fault
from tradepipe.config import load_config
from tradepipe.core.model import OrderRequest, OrderType, Side
from tradepipe.core.notify import (
    MERGED_LINES,
    Note,
    NotifyKind,
    hold_until,
    merge,
    next_attempt,
    retry_delay,
    silence_due,
)
from tradepipe.engine.current import Current
from tradepipe.engine.notifier import Notifier
from tradepipe.errors import ConfigError
from tradepipe.journal import Journal
from tradepipe.journal.views import status_view

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


# ---- the pure decisions


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 10), (2, 20), (3, 40), (7, 640), (8, 1280), (9, 1800), (30, 1800)],
)
def test_retry_delay_doubles_from_10_s_to_at_most_30_min(attempts, delay):
    assert retry_delay(attempts) == timedelta(seconds=delay)


@pytest.mark.parametrize(
    ("age", "attempts", "due"),
    [
        (timedelta(0), 1, T0 + timedelta(seconds=10)),
        (timedelta(hours=23, minutes=59, seconds=50), 1, T0 + timedelta(seconds=10)),
        (timedelta(hours=23, minutes=59, seconds=51), 1, None),  # past 24 h by the next try
        (timedelta(hours=30), 9, None),
    ],
)
def test_next_attempt_gives_up_once_the_next_try_would_be_past_24_h(age, attempts, due):
    assert next_attempt(T0 - age, attempts, T0) == due


@pytest.mark.parametrize(
    ("last", "held"),
    [
        (None, None),
        (T0 - timedelta(seconds=60), None),
        (T0 - timedelta(seconds=59), T0 + timedelta(seconds=1)),
        (T0, T0 + timedelta(seconds=60)),
    ],
)
def test_hold_until_keeps_a_kind_back_for_the_minute_after_its_last_message(last, held):
    assert hold_until(last, T0) == held


def note(i: int, text: str = "") -> Note:
    return Note(i, NotifyKind.FAILURE, f"delivery {i}", text or f"delivery {i} rejected", T0)


def test_merge_of_one_is_that_notification_and_of_many_one_message_listing_them():
    one = merge(NotifyKind.FAILURE, [note(1)])
    assert (one.title, one.body, one.ids) == (
        "tradepipe: failure: delivery 1",
        "delivery 1 rejected",
        (1,),
    )
    many = merge(NotifyKind.FAILURE, [note(i) for i in range(1, 6)])
    assert many.title == "tradepipe: failure (5)"
    assert many.body.splitlines() == [
        "5 failure notifications:",
        *(f"- delivery {i} rejected" for i in range(1, 6)),
    ]
    assert many.ids == (1, 2, 3, 4, 5)
    flood = merge(NotifyKind.FAILURE, [note(i) for i in range(25)])
    assert len(flood.body.splitlines()) == 1 + MERGED_LINES + 1
    assert flood.body.endswith("… and 15 more (tradepipe signals)")
    assert len(flood.ids) == 25


@pytest.mark.parametrize(
    ("silent_for", "alerted", "due"),
    [(59, False, False), (60, False, True), (600, True, False)],
)
def test_silence_is_due_once_after_its_time(silent_for, alerted, due):
    heard = T0 - timedelta(seconds=silent_for)
    assert silence_due(heard, alerted, timedelta(seconds=60), T0) is due


# ---- the config


def problems(tmp_path: Path, extra: str, **kw: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, extra=extra, **kw))
    return str(refused.value)


def test_a_target_without_events_takes_every_kind_but_fills(tmp_path):
    config = load_config(write_config(tmp_path, extra='[[notify]]\nurl = "json://127.0.0.1/x"\n'))
    (target,) = config.notify
    assert target.kinds == {k for k in NotifyKind if k is not NotifyKind.FILL}
    assert "json://" not in repr(config)  # the URL is a secret


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'url = "nosuch://SECRET-PART@example.com"',
            'notify[0].url: Apprise cannot use this "nosuch://" URL',
        ),
        ('url = "SECRET-PART"', 'notify[0].url: must be an Apprise URL such as "tgram://'),
        ("url = 5", "notify[0].url: must be a string"),
        ('url = "json://h/x"\nevents = ["failures"]', 'unknown event kind "failures" (valid: '),
        ('url = "json://h/x"\nevent = ["failure"]', 'unknown key "event" (did you mean "events"'),
    ],
)
def test_a_bad_target_is_named_without_echoing_its_url(tmp_path, table, message):
    found = problems(tmp_path, f"[[notify]]\n{table}\n")
    assert message in found
    assert "SECRET-PART" not in found


def test_silence_alert_must_be_positive(tmp_path):
    found = problems(tmp_path, "", strategy="silence_alert = 0\n")
    assert "strategies.trend.silence_alert: must be greater than 0" in found


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short-SECRET", "server.metrics_token: too weak: 12 characters, at least 22 needed"),
        ("SECRET" + "a" * 30, "server.metrics_token: too weak: fewer than 8 distinct characters"),
    ],
)
def test_a_weak_metrics_token_is_refused_without_being_echoed(tmp_path, token, message):
    config = write_config(tmp_path)
    text = config.read_text().replace("[journal]", f'metrics_token = "{token}"\n\n[journal]', 1)
    config.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert message in str(refused.value)
    assert "SECRET" not in str(refused.value)


# ---- the sender, in-process


def notifier_for(tmp_path: Path, extra: str, clock: FixedClock) -> tuple[Notifier, Journal]:
    config = load_config(write_config(tmp_path, extra=extra))
    journal = Journal.open(tmp_path / "journal.db")
    return Notifier(journal, Current(config, {}), clock), journal


def statuses(journal: Journal) -> list[tuple]:
    return [
        (r["id"], r["status"], r["attempts"])
        for r in journal.conn.execute("SELECT * FROM notifications ORDER BY id")
    ]


def test_the_first_of_a_kind_goes_at_once_the_rest_of_its_minute_as_one_message(tmp_path):
    clock = FixedClock(T0)
    with Receiver() as receiver:
        notifier, journal = notifier_for(tmp_path, notify_table(receiver), clock)

        async def main() -> None:
            notifier.notify(NotifyKind.FAILURE, "delivery 1", "delivery 1 rejected")
            await notifier.send_due()
            assert len(receiver.wait(1)) == 1
            for i in (2, 3, 4):
                notifier.notify(NotifyKind.FAILURE, f"delivery {i}", f"delivery {i} rejected")
            notifier.notify(NotifyKind.APPROVAL, "delivery 5", "delivery 5 waits")
            clock.advance(20)
            wait = await notifier.send_due()  # the approval goes, the failures wait
            assert wait == pytest.approx(40)
            assert [m["title"] for m in receiver.wait(2)][1].startswith("tradepipe: waiting")
            clock.advance(40)
            await notifier.send_due()
            notifier.close()

        asyncio.run(main())
        merged = receiver.wait(3)[2]
    assert merged["title"] == "tradepipe: failure (3)"
    assert merged["message"].splitlines() == [
        "3 failure notifications:",
        "- delivery 2 rejected",
        "- delivery 3 rejected",
        "- delivery 4 rejected",
    ]
    assert statuses(journal) == [(i, "sent", 1) for i in range(1, 6)]
    journal.close()


def test_a_failing_target_is_retried_with_back_off_then_given_up_after_24_h(tmp_path):
    clock = FixedClock(T0)
    # Broker notices only: a day passes in this test, and a daily summary is not its subject.
    closed = f'[[notify]]\nurl = "json://127.0.0.1:{free_port()}/x"\nevents = ["broker"]\n'
    notifier, journal = notifier_for(tmp_path, closed, clock)

    async def main() -> None:
        notifier.notify(NotifyKind.BROKER, "account paper", "account paper: the broker is down")
        assert await notifier.send_due() == pytest.approx(10)
        row = journal.conn.execute("SELECT * FROM notifications").fetchone()
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert "Connection error" in row["error"]
        assert row["next_at"] == (T0 + timedelta(seconds=10)).isoformat(timespec="microseconds")
        clock.advance(5)
        await notifier.send_due()  # not due yet: not tried
        assert statuses(journal) == [(1, "pending", 1)]
        clock.advance(5)
        assert await notifier.send_due() == pytest.approx(20)  # 10 s, then 20 s …
        assert statuses(journal) == [(1, "pending", 2)]
        clock.now = T0 + timedelta(hours=24)
        await notifier.send_due()
        notifier.close()

    asyncio.run(main())
    assert statuses(journal) == [(1, "given_up", 3)]
    (event,) = [e for e in journal.events() if e["kind"] == "notification"]
    assert event["subject"] == "notification 1"
    assert json.loads(event["detail"])["error"].startswith("not sent within 24 h: ")
    pending = status_view(notifier.current.config, journal, None, None)["pending"]
    assert (pending["notifications"], pending["notifications_given_up"]) == (0, 1)
    journal.close()


def test_rows_of_a_target_a_reload_removed_are_given_up_and_no_target_means_no_row(tmp_path):
    clock = FixedClock(T0)
    notifier, journal = notifier_for(tmp_path, '[[notify]]\nurl = "json://127.0.0.1:9/x"\n', clock)
    notifier.notify(NotifyKind.FAILURE, "signal 1", "rejected")
    notifier.current.config = load_config(write_config(tmp_path, extra=""))
    assert notifier.notify(NotifyKind.FAILURE, "signal 2", "rejected") == 0

    async def main() -> None:
        await notifier.send_due()
        notifier.close()

    asyncio.run(main())
    assert statuses(journal) == [(1, "given_up", 1)]
    journal.close()


# ---- causes found by the engine (reconciliation, broker health), against the paper broker


def broker_notes(journal: Journal) -> list[str]:
    return [
        r["text"]
        for r in journal.conn.execute(
            "SELECT text FROM notifications WHERE kind = 'broker' ORDER BY id"
        )
    ]


def test_a_position_out_of_step_is_told_once_until_it_agrees_again(tmp_path):
    closed = f'[[notify]]\nurl = "json://127.0.0.1:{free_port()}/x"\nevents = ["broker"]\n'

    async def test(h: Harness) -> None:
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        manual = OrderRequest("manual-1", "paper", "AAPL", Side.SELL, Decimal(2))
        await h.engine.brokers["paper"].submit(manual)
        for _ in range(3):  # the periodic check finds it again and again: told once
            assert len(await h.engine.reconcile_account("paper")) == 1
        assert broker_notes(h.journal) == [
            "out of step: paper position AAPL: journal 5, broker 3; new entries blocked"
        ]
        squared = OrderRequest("manual-2", "paper", "AAPL", Side.BUY, Decimal(2), OrderType.MARKET)
        await h.engine.brokers["paper"].submit(squared)
        assert await h.engine.reconcile_account("paper") == []
        again = OrderRequest("manual-3", "paper", "AAPL", Side.SELL, Decimal(1))
        await h.engine.brokers["paper"].submit(again)
        await h.engine.reconcile_account("paper")
        assert len(broker_notes(h.journal)) == 2  # agreed in between: a new difference

    run(write_config(tmp_path, extra=closed), test)


def test_a_broker_down_is_told_once_and_back_up_once(tmp_path):
    closed = f'[[notify]]\nurl = "json://127.0.0.1:{free_port()}/x"\nevents = ["broker"]\n'

    async def test(h: Harness) -> None:
        await h.engine.stop()
        h.engine = h.new_engine()
        h.engine.reconnect_backoff = (0.02, 0.08)
        broker = h.engine.brokers["paper"]
        broker.inject(Fault.DOWN, "connection refused")
        await h.engine.start()
        await asyncio.sleep(0.1)
        await h.engine.reconnect_due()  # still down: not told again
        broker.heal()
        await asyncio.sleep(0.1)
        await h.engine.reconnect_due()
        await h.engine.drain()
        notes = broker_notes(h.journal)
        assert len(notes) == 2, notes
        assert notes[0].startswith('account "paper": the broker is down: ')
        assert "connection refused" in notes[0]
        assert notes[1] == 'account "paper": the broker is back up (reconnected and reconciled)'

    run(write_config(tmp_path, extra=closed), test)
