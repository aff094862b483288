"""Trading states per scope (SPEC §13): the strictest wins, what each lets through, and when
the trading day starts. Pure tables and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.decision import Plan, PlannedOrder, Reject
from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.trading_states import (
    EffectiveState,
    Leg,
    LegKind,
    Scope,
    ScopeKind,
    ScopeState,
    TradingState,
    day_start,
    effective_state,
    gate,
    gate_plan,
    next_day_start,
    order_legs,
    split_order,
)

D = Decimal
ACTIVE, REDUCE_ONLY, HALTED = TradingState
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def test_states_are_ordered_by_strictness():
    assert sorted(TradingState, key=lambda s: s.strictness) == [ACTIVE, REDUCE_ONLY, HALTED]


def test_scope_names_itself():
    assert [str(Scope.everything()), str(Scope.account("live")), str(Scope.strategy("trend"))] == [
        "everything",
        'account "live"',
        'strategy "trend"',
    ]


STATE_ROWS = [
    ("nothing-set", [], "active"),
    (
        "account-reduce-only",
        [ScopeState(Scope.account("live"), REDUCE_ONLY, "max_daily_loss 2,000")],
        'account "live" is reduce_only (max_daily_loss 2,000)',
    ),
    (
        "other-account-ignored",
        [ScopeState(Scope.account("paper"), HALTED, "operator")],
        "active",
    ),
    (
        "other-subscription-ignored",
        [ScopeState(Scope.subscription("mean-live"), HALTED, "operator")],
        "active",
    ),
    (
        "strictest-wins-over-narrower",
        [
            ScopeState(Scope.everything(), REDUCE_ONLY, "weekend"),
            ScopeState(Scope.subscription("trend-live"), HALTED, "5 losses"),
        ],
        'subscription "trend-live" is halted (5 losses)',
    ),
    (
        "strictest-wins-over-broader",
        [
            ScopeState(Scope.everything(), HALTED, "operator: broker outage"),
            ScopeState(Scope.strategy("trend"), REDUCE_ONLY, "review"),
        ],
        "everything is halted (operator: broker outage)",
    ),
    (
        "equal-strictness-names-the-broadest",
        [
            ScopeState(Scope.strategy("trend"), REDUCE_ONLY, "review"),
            ScopeState(Scope.account("live"), REDUCE_ONLY, "drawdown"),
        ],
        'account "live" is reduce_only (drawdown)',
    ),
    (
        "active-entry-changes-nothing",
        [ScopeState(Scope.account("live"), ACTIVE, "resumed")],
        "active",
    ),
    (
        "daily-loss-trip-over-at-day-start",
        [ScopeState(Scope.account("live"), REDUCE_ONLY, "max_daily_loss", until_at=NOW)],
        "active",
    ),
    (
        "daily-loss-trip-until-day-start",
        [
            ScopeState(
                Scope.account("live"), REDUCE_ONLY, "max_daily_loss", until_at=NOW + timedelta(1)
            )
        ],
        'account "live" is reduce_only (max_daily_loss)',
    ),
]


@pytest.mark.parametrize(
    ("states", "expected"),
    [row[1:] for row in STATE_ROWS],
    ids=[row[0] for row in STATE_ROWS],
)
def test_effective_state(states, expected):
    assert str(effective_state(states, "live", "trend", "trend-live", NOW)) == expected


def test_effective_state_without_strategy_ignores_strategy_states():
    states = [ScopeState(Scope.strategy("trend"), HALTED, "operator")]
    assert effective_state(states, "live", None, "manual-live").state is ACTIVE


REDUCING = EffectiveState(REDUCE_ONLY, Scope.account("live"), "max_daily_loss 2,000")
STOPPED = EffectiveState(HALTED, Scope.everything(), "operator: broker outage")
GATE_ROWS = [
    (EffectiveState(ACTIVE), LegKind.ENTRY, False, None),
    (
        REDUCING,
        LegKind.ENTRY,
        False,
        'account "live" is reduce_only (max_daily_loss 2,000): an entry is rejected; exits,'
        " cancels and flatten go through",
    ),
    (
        REDUCING,
        LegKind.ADD,
        False,
        'account "live" is reduce_only (max_daily_loss 2,000): an add is rejected; exits,'
        " cancels and flatten go through",
    ),
    (
        REDUCING,
        LegKind.REVERSAL_ENTRY,
        False,
        'account "live" is reduce_only (max_daily_loss 2,000): the reversal\'s entry is'
        " rejected; exits, cancels and flatten go through",
    ),
    (REDUCING, LegKind.REVERSAL_EXIT, False, None),
    (REDUCING, LegKind.EXIT, False, None),
    (REDUCING, LegKind.CANCEL, False, None),
    (REDUCING, LegKind.BREAKEVEN, False, None),
    (REDUCING, LegKind.FLATTEN, False, None),
    (STOPPED, LegKind.FLATTEN, True, None),
    (STOPPED, LegKind.CANCEL, False, None),
    (
        STOPPED,
        LegKind.FLATTEN,
        False,
        "everything is halted (operator: broker outage): a strategy's flatten is rejected; only"
        " an operator's flatten goes through",
    ),
    (
        STOPPED,
        LegKind.EXIT,
        False,
        "everything is halted (operator: broker outage): an exit is rejected; only an"
        " operator's flatten goes through",
    ),
    (
        STOPPED,
        LegKind.BREAKEVEN,
        True,
        "everything is halted (operator: broker outage): a breakeven move is rejected; only an"
        " operator's flatten goes through",
    ),
]


@pytest.mark.parametrize(
    ("state", "kind", "is_operator", "expected"),
    GATE_ROWS,
    ids=[f"{row[0].state}-{row[1]}{'-operator' if row[2] else ''}" for row in GATE_ROWS],
)
def test_gate(state, kind, is_operator, expected):
    assert gate(state, kind, is_operator=is_operator) == expected


@pytest.mark.parametrize(
    ("position", "side", "quantity", "legs"),
    [
        ("0", Side.BUY, "10", [(LegKind.ENTRY, "10")]),
        ("5", Side.BUY, "10", [(LegKind.ADD, "10")]),
        ("-5", Side.SELL, "10", [(LegKind.ADD, "10")]),
        ("10", Side.SELL, "4", [(LegKind.EXIT, "4")]),
        ("10", Side.SELL, "10", [(LegKind.EXIT, "10")]),
        ("10", Side.SELL, "15", [(LegKind.REVERSAL_EXIT, "10"), (LegKind.REVERSAL_ENTRY, "5")]),
        ("-3", Side.BUY, "8", [(LegKind.REVERSAL_EXIT, "3"), (LegKind.REVERSAL_ENTRY, "5")]),
    ],
)
def test_split_order(position, side, quantity, legs):
    assert split_order(D(position), side, D(quantity)) == tuple(
        Leg(kind, side, D(q)) for kind, q in legs
    )


DAY_ROWS = [
    # 2026-12-04 is a Friday; New York is UTC−5 in December.
    ("utc-midnight", NOW, "00:00", "UTC", "2026-12-04T00:00:00+00:00", "2026-12-05T00:00:00+00:00"),
    (
        "ny-17h-before-start",
        datetime(2026, 12, 4, 21, 59, tzinfo=UTC),
        "17:00",
        "America/New_York",
        "2026-12-03T22:00:00+00:00",
        "2026-12-04T22:00:00+00:00",
    ),
    (
        "ny-17h-at-start",
        datetime(2026, 12, 4, 22, 0, tzinfo=UTC),
        "17:00",
        "America/New_York",
        "2026-12-04T22:00:00+00:00",
        "2026-12-05T22:00:00+00:00",
    ),
    (
        # 2026-03-08: New York springs forward at 02:00; the next day starts an hour earlier
        # in UTC.
        "ny-across-dst",
        datetime(2026, 3, 7, 23, 0, tzinfo=UTC),
        "17:00",
        "America/New_York",
        "2026-03-07T22:00:00+00:00",
        "2026-03-08T21:00:00+00:00",
    ),
    (
        # 02:30 does not exist on 2026-03-08 in New York: the day starts at 03:30 EDT.
        "ny-start-in-dst-gap",
        datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
        "02:30",
        "America/New_York",
        "2026-03-08T07:30:00+00:00",
        "2026-03-09T06:30:00+00:00",
    ),
]


@pytest.mark.parametrize(
    ("now", "starts_at", "zone", "start", "following"),
    [row[1:] for row in DAY_ROWS],
    ids=[row[0] for row in DAY_ROWS],
)
def test_day_start_and_next(now, starts_at, zone, start, following):
    assert day_start(now, starts_at, zone).isoformat() == start
    assert next_day_start(now, starts_at, zone).isoformat() == following


# Properties.

scopes = st.sampled_from(
    [
        Scope.everything(),
        Scope.account("live"),
        Scope.account("paper"),
        Scope.strategy("trend"),
        Scope.strategy("mean"),
        Scope.subscription("trend-live"),
        Scope.subscription("mean-paper"),
    ]
)
scope_states = st.lists(
    st.builds(ScopeState, scopes, st.sampled_from(TradingState), st.sampled_from(["a", "b"]))
)
COVERS = {
    Scope.everything(),
    Scope.account("live"),
    Scope.strategy("trend"),
    Scope.subscription("trend-live"),
}


@given(scope_states)
def test_the_strictest_covering_scope_always_wins(states):
    effective = effective_state(states, "live", "trend", "trend-live")
    covering = [s for s in states if s.scope in COVERS]
    strictest = max((s.state.strictness for s in covering), default=0)
    assert effective.state.strictness == strictest
    if effective.scope is not None:
        assert any(
            s.scope == effective.scope
            and s.state is effective.state
            and s.reason == effective.reason
            for s in covering
        )


positions = st.decimals(min_value=-1_000, max_value=1_000, places=2)
orders = st.tuples(st.sampled_from(Side), st.decimals(min_value="0.01", max_value=2_000, places=2))


@given(positions, st.lists(orders, max_size=8), st.booleans())
def test_reduce_only_never_lets_the_position_grow(position, sequence, is_operator):
    # Whatever orders arrive, the legs that pass leave |position| no larger than before.
    for side, quantity in sequence:
        before = abs(position)
        for leg in split_order(position, side, quantity):
            if gate(REDUCING, leg.kind, is_operator=is_operator) is None:
                position += leg.side.sign * leg.quantity
            else:
                break  # a rejected leg stops the order: its later legs wait for it
        assert abs(position) <= before


@given(positions, orders)
def test_split_order_legs_add_up_to_the_order(position, order):
    side, quantity = order
    legs = split_order(position, side, quantity)
    assert sum(leg.quantity for leg in legs) == quantity
    assert all(leg.side is side and leg.quantity > 0 for leg in legs)


@given(st.sampled_from(LegKind), st.booleans())
def test_halted_passes_only_an_operators_flatten_and_cancels(kind, is_operator):
    passes = gate(STOPPED, kind, is_operator=is_operator) is None
    assert passes == (kind is LegKind.CANCEL or (kind is LegKind.FLATTEN and is_operator))


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["00:00", "02:30", "09:30", "17:00", "23:59"]),
    st.sampled_from(["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe"]),
)
def test_now_is_inside_its_trading_day(now, starts_at, zone):
    start = day_start(now, starts_at, zone)
    following = next_day_start(now, starts_at, zone)
    assert start <= now < following
    assert timedelta(hours=22) <= following - start <= timedelta(hours=26)
    assert day_start(following, starts_at, zone) == following


def test_kind_scopes_listed_broadest_first():
    assert list(ScopeKind) == ["everything", "account", "strategy", "subscription"]


# The gate on a whole plan (gate_plan): planner-shaped plans against each state.

LONG_10 = D(10)


def _order(leg, side, quantity, role, **extra):
    return PlannedOrder(leg, side, D(quantity), role, **extra)


BUY, SELL = Side.BUY, Side.SELL
ENTRY_ROLE, EXIT_ROLE = OrderRole.ENTRY, OrderRole.EXIT
ENTRY_PLAN = Plan(
    "enter long 5",
    (
        _order("entry", BUY, "5", ENTRY_ROLE),
        _order("take_profit", SELL, "5", OrderRole.TAKE_PROFIT, parent_leg="entry"),
        _order("stop_loss", SELL, "5", OrderRole.STOP_LOSS, parent_leg="entry"),
    ),
)
EXIT_PLAN = Plan("exit long 10 of 10", (_order("exit", SELL, "10", EXIT_ROLE),), True)
PARTIAL_EXIT = Plan("partial exit of long 4 of 10", (_order("exit", SELL, "4", EXIT_ROLE),))
REVERSAL = Plan(
    "exit long 10, wait for the fill, then sell 5",
    (
        _order("exit", SELL, "10", EXIT_ROLE, wait_for_fill=True),
        _order("entry", SELL, "5", ENTRY_ROLE),
        _order("stop_loss", BUY, "5", OrderRole.STOP_LOSS, parent_leg="entry"),
    ),
    True,
)
BREAKEVEN = Plan(
    "move the stop to breakeven",
    (
        _order(
            "breakeven",
            SELL,
            "10",
            OrderRole.STOP_LOSS,
            order_type=OrderType.STOP,
            stop_price=D(100),
            replaces="tp-old-stop",
        ),
    ),
)
CANCEL_ONLY = Plan("cancel the open orders for AAPL", (), True)
REDUCE_REASON = (
    'account "live" is reduce_only (max_daily_loss 2,000): {} rejected; exits, cancels and'
    " flatten go through"
)
HALT_REASON = (
    "everything is halted (operator: broker outage): {} rejected; only an operator's flatten"
    " goes through"
)
PLAN_ROWS = [
    ("active-passes-an-entry", EffectiveState(ACTIVE), "0", ENTRY_PLAN, ENTRY_PLAN),
    (
        "reduce-only-rejects-an-entry-and-its-bracket",
        REDUCING,
        "0",
        ENTRY_PLAN,
        Reject(REDUCE_REASON.format("an entry is")),
    ),
    (
        "reduce-only-rejects-an-add",
        REDUCING,
        "10",
        ENTRY_PLAN,
        Reject(REDUCE_REASON.format("an add is")),
    ),
    ("reduce-only-passes-an-exit", REDUCING, "10", EXIT_PLAN, EXIT_PLAN),
    ("reduce-only-passes-a-partial-exit", REDUCING, "10", PARTIAL_EXIT, PARTIAL_EXIT),
    ("reduce-only-passes-breakeven", REDUCING, "10", BREAKEVEN, BREAKEVEN),
    ("reduce-only-passes-a-cancel", REDUCING, "10", CANCEL_ONLY, CANCEL_ONLY),
    (
        "reduce-only-keeps-only-a-reversals-exit",
        REDUCING,
        "10",
        REVERSAL,
        Plan(
            "exit long 10, wait for the fill, then sell 5; "
            + REDUCE_REASON.format("the reversal's entry is"),
            (_order("exit", SELL, "10", EXIT_ROLE),),  # nothing waits for its fill now
            True,
        ),
    ),
    (
        "reduce-only-cuts-an-exit-that-crosses-flat",
        REDUCING,
        "10",
        Plan("sell 15", (_order("exit", SELL, "15", EXIT_ROLE),)),
        Plan(
            "sell 15; " + REDUCE_REASON.format("the reversal's entry is"),
            (_order("exit", SELL, "10", EXIT_ROLE),),
        ),
    ),
    (
        "reduce-only-judges-an-exit-on-what-is-held-not-on-a-stripped-add",
        REDUCING,
        "10",
        Plan(
            "add then exit",
            (_order("add", BUY, "5", ENTRY_ROLE), _order("exit", SELL, "15", EXIT_ROLE)),
        ),
        Plan(
            "add then exit; "
            + REDUCE_REASON.format("an add is")
            + "; "
            + REDUCE_REASON.format("the reversal's entry is"),
            (_order("exit", SELL, "10", EXIT_ROLE),),
        ),
    ),
    (
        "reduce-only-rejects-an-entry-with-cancels-rather-than-cancel-alone",
        REDUCING,
        "10",
        Plan("add long 5", (_order("entry", BUY, "5", ENTRY_ROLE),), True),
        Reject(REDUCE_REASON.format("an add is")),
    ),
    (
        "halted-rejects-an-entry",
        STOPPED,
        "0",
        ENTRY_PLAN,
        Reject(HALT_REASON.format("an entry is")),
    ),
    ("halted-rejects-an-exit", STOPPED, "10", EXIT_PLAN, Reject(HALT_REASON.format("an exit is"))),
    (
        "halted-rejects-a-reversal",
        STOPPED,
        "10",
        REVERSAL,
        Reject(HALT_REASON.format("a reversal is")),
    ),
    (
        "halted-rejects-breakeven",
        STOPPED,
        "10",
        BREAKEVEN,
        Reject(HALT_REASON.format("a breakeven move is")),
    ),
    ("halted-passes-a-plan-that-only-cancels", STOPPED, "10", CANCEL_ONLY, CANCEL_ONLY),
]


@pytest.mark.parametrize(
    ("state", "position", "plan", "expected"),
    [row[1:] for row in PLAN_ROWS],
    ids=[row[0] for row in PLAN_ROWS],
)
def test_gate_plan(state, position, plan, expected):
    assert gate_plan(plan, D(position), state) == expected


def test_order_legs_name_a_reversals_exit_and_entry():
    kinds = [[leg.kind for leg in legs] for _, legs in order_legs(REVERSAL, LONG_10)]
    assert kinds == [[LegKind.REVERSAL_EXIT], [LegKind.REVERSAL_ENTRY], [LegKind.EXIT]]


quantities = st.decimals(min_value="0.01", max_value=50, places=2)


@st.composite
def plans(draw, tickers: tuple[str | None, ...] = (None,)):
    """Any plan of up to 6 orders: entries, exits, stops and targets, some of them bracket
    children of an earlier order, some replacing a working stop; each on one of `tickers` (a
    bracket child on its parent's)."""
    orders = []
    for index in range(draw(st.integers(0, 6))):
        role = draw(st.sampled_from(OrderRole))
        parents = [o for o in orders if o.parent_leg is None]
        parent = draw(st.sampled_from([None, *parents])) if parents else None
        replaces = draw(st.sampled_from([None, "old-stop"])) if parent is None else None
        ticker = parent.ticker if parent is not None else draw(st.sampled_from(tickers))
        orders.append(
            PlannedOrder(
                f"leg{index}",
                draw(st.sampled_from(Side)),
                draw(quantities),
                role,
                wait_for_fill=draw(st.booleans()),
                parent_leg=parent.leg if parent is not None else None,
                replaces=replaces,
                ticker=ticker,
            )
        )
    return Plan("drawn", tuple(orders), draw(st.booleans()))


def _grows(before: Decimal, order: PlannedOrder) -> bool:
    after = before + order.side.sign * order.quantity
    return abs(after) > abs(before) or after * before < 0


@given(positions, plans())
def test_reduce_only_never_lets_a_plan_grow_the_position(position, plan):
    let_through = gate_plan(plan, position, REDUCING)
    if isinstance(let_through, Reject):
        return
    originals = {o.leg: o for o in plan.orders}
    running, after = position, {}
    for order in let_through.orders:
        assert order.quantity <= originals[order.leg].quantity  # never grows an order
        if order.parent_leg is not None:  # rests on its parent's fill
            assert not _grows(after[order.parent_leg], order)
            continue
        assert not _grows(running, order)
        if order.replaces is None:  # a replacement takes a working stop's place
            running += order.side.sign * order.quantity
        after[order.leg] = running
    assert abs(running) <= abs(position)
    stripped = let_through != plan
    if stripped and not any(o.role is OrderRole.ENTRY for o in let_through.orders):
        assert not any(o.wait_for_fill for o in let_through.orders)  # nothing left to wait for


@given(positions, plans())
def test_halted_lets_through_nothing_but_cancels(position, plan):
    let_through = gate_plan(plan, position, STOPPED)
    assert isinstance(let_through, Reject) or let_through.orders == ()
    if isinstance(let_through, Plan):
        assert let_through == plan


@given(positions, plans())
def test_active_changes_no_plan(position, plan):
    assert gate_plan(plan, position, EffectiveState(ACTIVE)) is plan


# An option plan (SPEC §15): its orders are on different contracts (each names its ticker), and
# each is judged against the position of its own contract.

PUT, CALL, PUT_2 = "SPY 261218P00595000", "SPY 261218C00605000", "SPY 270115P00590000"
OPTION_REVERSAL = Plan(
    f"exit long 2 of 2 ({PUT}); enter long 2 ({CALL})",
    (
        _order("exit", SELL, "2", EXIT_ROLE, wait_for_fill=True, ticker=PUT),
        _order("entry", BUY, "2", ENTRY_ROLE, ticker=CALL),
    ),
)
OPTION_EXITS = Plan(
    "exit both puts",
    (
        _order("exit", SELL, "2", EXIT_ROLE, ticker=PUT),
        _order("exit2", SELL, "1", EXIT_ROLE, ticker=PUT_2),
    ),
)
OPTION_ADD = Plan("add a call", (_order("entry", BUY, "1", ENTRY_ROLE, ticker=CALL),))
HELD_PUTS = {PUT: D(2), PUT_2: D(1)}
OPTION_ROWS = [
    (
        "reduce-only-closes-the-put-and-strips-the-call",
        REDUCING,
        HELD_PUTS,
        OPTION_REVERSAL,
        Plan(
            f"{OPTION_REVERSAL.summary}; " + REDUCE_REASON.format("the reversal's entry is"),
            (_order("exit", SELL, "2", EXIT_ROLE, ticker=PUT),),  # nothing waits for it now
        ),
    ),
    (
        "active-passes-an-option-reversal",
        EffectiveState(ACTIVE),
        HELD_PUTS,
        OPTION_REVERSAL,
        OPTION_REVERSAL,
    ),
    ("reduce-only-passes-closes-of-two-contracts", REDUCING, HELD_PUTS, OPTION_EXITS, OPTION_EXITS),
    (
        "reduce-only-rejects-adding-to-a-held-call",
        REDUCING,
        {CALL: D(1)},
        OPTION_ADD,
        Reject(REDUCE_REASON.format("an add is")),
    ),
    (
        "reduce-only-rejects-a-call-bought-while-only-a-put-is-held",
        REDUCING,
        HELD_PUTS,
        OPTION_ADD,
        Reject(REDUCE_REASON.format("an entry is")),
    ),
    (
        "reduce-only-counts-an-unlisted-contract-flat",
        REDUCING,
        {},
        OPTION_EXITS,
        Reject(REDUCE_REASON.format("an entry is")),
    ),
    (
        "halted-rejects-an-option-reversal-naming-it",
        STOPPED,
        HELD_PUTS,
        OPTION_REVERSAL,
        Reject(HALT_REASON.format("a reversal is")),
    ),
    (
        "halted-rejects-the-close-of-a-put",
        STOPPED,
        HELD_PUTS,
        OPTION_EXITS,
        Reject(HALT_REASON.format("an exit is")),
    ),
]


@pytest.mark.parametrize(
    ("state", "held", "plan", "expected"),
    [row[1:] for row in OPTION_ROWS],
    ids=[row[0] for row in OPTION_ROWS],
)
def test_gate_plan_judges_each_contract_on_its_own_position(state, held, plan, expected):
    # The planner's own position is the last leg's contract's (the call's: flat): it is not
    # what the put's close is judged by.
    assert gate_plan(plan, D(0), state, positions=held) == expected


def test_order_legs_of_an_option_reversal():
    judged = order_legs(OPTION_REVERSAL, D(0), positions=HELD_PUTS)
    kinds = [[leg.kind for leg in legs] for _, legs in judged]
    assert kinds == [[LegKind.REVERSAL_EXIT], [LegKind.REVERSAL_ENTRY]]


def test_orders_naming_no_ticker_act_on_the_plans_own_position():
    # A stock plan names no ticker on its orders: `positions` does not change how it is judged.
    for plan in (ENTRY_PLAN, EXIT_PLAN, REVERSAL, BREAKEVEN):
        for state in (REDUCING, STOPPED):
            assert gate_plan(plan, LONG_10, state, positions={PUT: D(3)}) == gate_plan(
                plan, LONG_10, state
            )


CONTRACTS = (PUT, CALL, PUT_2)


@given(st.fixed_dictionaries({t: positions for t in CONTRACTS}), plans(CONTRACTS))
def test_reduce_only_never_lets_an_option_plan_grow_any_contract(held, plan):
    let_through = gate_plan(plan, D(0), REDUCING, positions=held)
    if isinstance(let_through, Reject):
        return
    running, after = dict(held), {}
    for order in let_through.orders:
        assert order.ticker is not None
        if order.parent_leg is not None:
            assert not _grows(after[order.parent_leg], order)
            continue
        assert not _grows(running[order.ticker], order)
        if order.replaces is None:
            running[order.ticker] += order.side.sign * order.quantity
        after[order.leg] = running[order.ticker]
    assert all(abs(running[t]) <= abs(held[t]) for t in CONTRACTS)
