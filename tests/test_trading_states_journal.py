"""Trading states journaled (SPEC §13): one row per scope that survives reopening the file,
every change an audit event, and a trip that never loosens what is in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradepipe.core.trading_states import Scope, ScopeState, TradingState, kept_state
from tradepipe.engine.trading_states import TradingStates
from tradepipe.journal import Journal

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
ACTIVE, REDUCE_ONLY, HALTED = TradingState
LIVE = Scope.account("live")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_a_halt_survives_reopening_the_journal_and_is_in_the_audit_trail(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    states = TradingStates(journal, Clock())
    states.halt(LIVE, HALTED, "going on holiday")
    journal.close()

    again = TradingStates(Journal.open(path), Clock())
    effective = again.effective("live", "trend", "trend-live-spy")
    assert (effective.state, effective.scope, effective.reason) == (
        HALTED,
        LIVE,
        "going on holiday",
    )
    assert again.effective("paper", "trend", "trend-paper-spy").state is ACTIVE
    events = [e for e in again.journal.events() if e["kind"] == "trading_state"]
    assert [(e["subject"], '"halted"' in e["detail"]) for e in events] == [('account "live"', True)]


def test_resume_ends_the_state_once(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    states = TradingStates(journal, Clock())
    states.halt(Scope.everything(), REDUCE_ONLY, "news at 14:30")
    assert states.resume(Scope.everything()) is True
    assert states.resume(Scope.everything()) is False  # nothing to end: nothing journaled
    assert journal.trading_states() == []
    assert TradingStates(journal, Clock()).effective("a", None, "s").state is ACTIVE
    kinds = [e["kind"] for e in journal.events()]
    assert kinds == ["trading_state", "trading_state"]


def test_a_trip_journals_its_figures_and_ends_at_its_time(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    clock = Clock()
    states = TradingStates(journal, clock)
    row = states.trip(
        ScopeState(LIVE, REDUCE_ONLY, "max_daily_loss 1,000: the day's loss is 1,200", LATER),
        limit="max_daily_loss",
        figures={"loss": Decimal("1200"), "limit": Decimal("1000")},
    )
    assert row is not None
    (read,) = TradingStates(journal, clock).rows.values()
    assert (read.limit, read.figures, read.state.until_at) == (
        "max_daily_loss",
        {"limit": Decimal("1000"), "loss": Decimal("1200")},
        LATER,
    )
    assert states.effective("live", None, "s").state is REDUCE_ONLY
    clock.now = LATER
    assert states.effective("live", None, "s").state is ACTIVE  # at once, before it is pruned
    assert states.expire() == [LIVE]
    assert journal.trading_states() == []


def test_a_trip_does_not_loosen_an_operators_halt(tmp_path):
    states = TradingStates(Journal.open(tmp_path / "j.db"), Clock())
    states.halt(LIVE, HALTED, "hands off")
    tripped = states.trip(
        ScopeState(LIVE, REDUCE_ONLY, "max_orders_per_minute 60"),
        limit="max_orders_per_minute",
        figures={},
    )
    assert tripped is None
    assert states.effective("live", None, "s").reason == "hands off"


H = ScopeState(LIVE, HALTED, "halt")
R = ScopeState(LIVE, REDUCE_ONLY, "reduce")
R_UNTIL = ScopeState(LIVE, REDUCE_ONLY, "reduce until", LATER)
H_UNTIL = ScopeState(LIVE, HALTED, "halt until", LATER)
H_PAST = ScopeState(LIVE, HALTED, "over", NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("existing", "new", "kept"),
    [
        (None, R, R),
        (H, R, H),  # never loosened
        (R, H, H),  # tightened
        (R, R_UNTIL, R),  # the longer of two equal ones
        (R_UNTIL, R, R),
        (H_UNTIL, R, H_UNTIL),
        (H_PAST, R, R),  # an expired state is no state
    ],
)
def test_kept_state(existing, new, kept):
    assert kept_state(existing, new, NOW) is kept
