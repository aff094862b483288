"""The notification kinds told from inside the engine (SPEC §14): `risk` (a trip, a halt, a
resume, a trip's end) in the transaction of the state it tells, `fill` with its order, and
`daily`, each account's day at its next day start. A real engine on the paper broker, real
Apprise to a local receiver; the clock is the test's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.helpers import FixedClock, write_config
from tests.notify_receiver import Receiver, notify_table
from tests.test_engine import Harness, run
from tradepipe.config import load_config
from tradepipe.core.notify import NotifyKind, daily_text
from tradepipe.core.report import make_report
from tradepipe.core.trading_states import Scope, ScopeState, TradingState
from tradepipe.engine.current import Current
from tradepipe.engine.notifier import Notifier, outbox
from tradepipe.engine.trading_states import TradingStates
from tradepipe.journal import Journal

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def notes(journal: Journal) -> list[tuple[str, str, str]]:
    return [
        (r["kind"], r["subject"], r["text"])
        for r in journal.conn.execute("SELECT * FROM notifications ORDER BY id")
    ]


def states_with_outbox(tmp_path: Path, events: str = '["risk"]') -> tuple[TradingStates, Journal]:
    extra = f'\n[[notify]]\nurl = "json://127.0.0.1:9/x"\nevents = {events}\n'
    config = load_config(write_config(tmp_path, extra=extra))
    journal = Journal.open(tmp_path / "journal.db")
    states = TradingStates(journal, FixedClock(T0))
    states.notify = outbox(journal, lambda: config, FixedClock(T0))
    return states, journal


# -- risk: a trip, a halt, a resume, a trip's end -------------------------------------------------


def test_each_change_of_a_trading_state_is_told_as_risk(tmp_path):
    states, journal = states_with_outbox(tmp_path)
    account = Scope.account("paper")
    states.trip(
        ScopeState(account, TradingState.REDUCE_ONLY, "max_daily_loss 100: lost 120"),
        limit="max_daily_loss",
        figures={"loss": D(120)},
    )
    states.halt(Scope.everything(), TradingState.HALTED, "operator: broker maintenance")
    states.resume(Scope.everything())
    states.resume(Scope.everything())  # active already: nothing changed, nothing told
    until = T0 + timedelta(hours=1)
    states.trip(
        ScopeState(Scope.strategy("trend"), TradingState.REDUCE_ONLY, "daily", until),
        limit="max_daily_loss",
        figures={},
    )
    states.clock = FixedClock(until)  # the trip's time came
    states.expire()
    assert notes(journal) == [
        ("risk", 'account "paper"', 'account "paper" is reduce_only: max_daily_loss 100: lost 120'),
        ("risk", "everything", "everything is halted: operator: broker maintenance"),
        ("risk", "everything", "everything is active again: tradepipe resume"),
        ("risk", 'strategy "trend"', 'strategy "trend" is reduce_only: daily'),
        (
            "risk",
            'strategy "trend"',
            'strategy "trend" is active again: max_daily_loss ended at the day\'s start',
        ),
    ]
    journal.close()


def test_a_trip_and_its_notice_land_together_or_not_at_all(tmp_path):
    states, journal = states_with_outbox(tmp_path)
    told = states.notify

    def fails_after_writing(kind: NotifyKind, subject: str, text: str) -> int:
        told(kind, subject, text)  # the row is written inside the trip's transaction
        raise RuntimeError("disk full")

    states.notify = fails_after_writing
    scope = Scope.account("paper")
    with pytest.raises(RuntimeError):
        states.trip(
            ScopeState(scope, TradingState.HALTED, "max_drawdown"),
            limit="max_drawdown",
            figures={},
        )
    assert notes(journal) == []
    assert journal.trading_states() == []
    assert scope not in states.rows  # memory agrees with the journal: nothing in force
    states.notify = told
    states.trip(
        ScopeState(scope, TradingState.HALTED, "max_drawdown"), limit="max_drawdown", figures={}
    )
    assert [s.state.state for s in journal.trading_states()] == [TradingState.HALTED]
    assert [n[0] for n in notes(journal)] == ["risk"]
    journal.close()


def test_no_target_taking_risk_means_no_row(tmp_path):
    states, journal = states_with_outbox(tmp_path, events='["failure"]')
    states.halt(Scope.account("paper"), TradingState.HALTED, "operator: x")
    assert notes(journal) == []
    journal.close()


# -- fill ----------------------------------------------------------------------------------------


def test_a_fill_is_told_with_its_order_and_a_target_without_fill_hears_nothing(tmp_path):
    with Receiver() as fills, Receiver() as others:
        extra = notify_table(fills, events=["fill"]) + notify_table(others)  # default kinds
        config = write_config(tmp_path, extra=extra)

        async def test(h: Harness):
            await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
            (message,) = await asyncio.to_thread(fills.wait, 1)
            assert message["title"] == "tradepipe: fill: paper AAPL"
            assert message["type"] == "success"
            assert message["message"].startswith("paper: bought 5 AAPL at 100 (entry order tp")
            assert message["message"].endswith(" of subscription trend-paper; 5 of 5 filled)")

        run(config, test)
        assert others.messages == []


# -- daily ---------------------------------------------------------------------------------------


def test_the_daily_summary_goes_at_the_day_start_with_the_days_trips_and_equity(tmp_path):
    with Receiver() as receiver:
        config = write_config(tmp_path, extra=notify_table(receiver, events=["daily"]))

        async def test(h: Harness):
            await h.send(
                {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100},
                {"ticker": "AAPL", "action": "exit", "signalPrice": 110},
                {"ticker": "MSFT", "action": "buy", "quantity": 2, "signalPrice": 50},
            )
            daily = h.engine.notifier.daily
            assert await daily.check(h.clock()) == datetime(2026, 11, 21, tzinfo=UTC)
            assert notes(h.journal) == []  # not before the day's end
            h.clock.now = datetime(2026, 11, 21, 0, 0, 30, tzinfo=UTC)
            assert await daily.check(h.clock()) == datetime(2026, 11, 22, tzinfo=UTC)
            assert await daily.check(h.clock()) == datetime(2026, 11, 22, tzinfo=UTC)  # once
            (message,) = await asyncio.to_thread(receiver.wait, 1)
            assert message["title"] == "tradepipe: daily summary: account paper"
            lines = message["message"].splitlines()
            assert lines[:2] == [
                "paper, 2026-11-20 00:00 UTC to 2026-11-21 00:00 UTC: 1 round trip closed"
                " (1 won, 0 lost), realized +50.00 net of 0.00 fees",
                "fills: 3",
            ]
            assert lines[2].startswith("open: unrealized")  # MSFT is held

        run(config, test)


def test_a_day_that_ended_while_stopped_is_summarized_once_at_the_start(tmp_path):
    extra = '\n[[notify]]\nurl = "json://127.0.0.1:9/x"\nevents = ["daily"]\n'
    config = load_config(write_config(tmp_path, extra=extra))
    journal = Journal.open(tmp_path / "journal.db")
    clock = FixedClock(T0)

    async def test() -> None:
        notifier = Notifier(journal, Current(config, {}), clock)
        notifier.daily.load()  # never summarized: the first is at the next day start
        assert await notifier.daily.check(clock()) == datetime(2026, 11, 21, tzinfo=UTC)
        clock.now = datetime(2026, 11, 21, 0, 1, tzinfo=UTC)
        await notifier.daily.check(clock())
        assert [n[1] for n in notes(journal)] == ["account paper"]
        # Stopped over the next day start; started again mid-morning the day after.
        clock.now = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
        restarted = Notifier(journal, Current(config, {}), clock)
        restarted.daily.load()
        assert await restarted.daily.check(clock()) == datetime(2026, 11, 23, tzinfo=UTC)
        texts = [n[2] for n in notes(journal)]
        assert len(texts) == 2
        assert texts[1].startswith("paper, 2026-11-21 00:00 UTC to 2026-11-22 00:00 UTC:")
        again = Notifier(journal, Current(config, {}), clock)  # a second restart the same day
        again.daily.load()
        await again.daily.check(clock())
        assert len(notes(journal)) == 2

    asyncio.run(test())
    journal.close()


def test_daily_text_without_trades_and_with_a_state_in_force():
    since = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    total = make_report((), {}).total
    text = daily_text(
        "ib",
        since,
        since + timedelta(days=1),
        total,
        0,
        (D("100000"), D("99000.5")),
        ["account ib is reduce_only: max_daily_loss"],
    )
    assert text.splitlines() == [
        "ib, 2026-11-20 05:00 UTC to 2026-11-21 05:00 UTC: no round trip closed",
        "fills: 0",
        "equity: 99,000.50 (-999.50 since 100,000.00)",
        "in force: account ib is reduce_only: max_daily_loss",
    ]


def test_a_resume_that_fails_to_journal_leaves_the_halt_in_force_in_memory_too(tmp_path):
    states, journal = states_with_outbox(tmp_path)
    scope = Scope.account("paper")
    states.halt(scope, TradingState.HALTED, "operator: broker maintenance")
    told = states.notify

    def fails(kind: NotifyKind, subject: str, text: str) -> int:
        told(kind, subject, text)
        raise RuntimeError("disk full")

    states.notify = fails
    with pytest.raises(RuntimeError):
        states.resume(scope)
    # The journal still holds the halt: so must the gate the delivery path reads.
    assert [r.state.scope for r in journal.trading_states()] == [scope]
    assert states.effective("paper", "trend", "trend-paper").state is TradingState.HALTED
    journal.close()
