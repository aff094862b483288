"""Trading states (SPEC §13): `active`, `reduce_only`, `halted`, set per scope (everything, an
account, a strategy, a subscription); the strictest one that covers an order decides it.

Pure: the states, the moment and the order's legs are arguments. A state may carry the moment
it ends (a daily-loss trip ends at the next day's start: `next_day_start`). `gate` judges one
leg; `gate_plan` a whole plan, each order split into legs against the position it acts on
(`order_legs`): the first step of the pre-trade check (engine/pretrade.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from tradepipe.core.decision import Plan, PlannedOrder, Reject
from tradepipe.core.model import OrderRole, Side
from tradepipe.core.windows import parse_minutes


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}


class ScopeKind(StrEnum):
    EVERYTHING = "everything"
    ACCOUNT = "account"
    STRATEGY = "strategy"
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str = ""  # empty for everything

    @classmethod
    def everything(cls) -> Scope:
        return cls(ScopeKind.EVERYTHING)

    @classmethod
    def account(cls, name: str) -> Scope:
        return cls(ScopeKind.ACCOUNT, name)

    @classmethod
    def strategy(cls, name: str) -> Scope:
        return cls(ScopeKind.STRATEGY, name)

    @classmethod
    def subscription(cls, name: str) -> Scope:
        return cls(ScopeKind.SUBSCRIPTION, name)

    def __str__(self) -> str:
        return "everything" if self.kind is ScopeKind.EVERYTHING else f'{self.kind} "{self.name}"'


@dataclass(frozen=True, slots=True)
class ScopeState:
    """A state set on one scope by a trip or an operator, with why and (maybe) until when."""

    scope: Scope
    state: TradingState
    reason: str
    until_at: datetime | None = None  # None: until `tradepipe resume`


@dataclass(frozen=True, slots=True)
class EffectiveState:
    """The state that governs an order; `scope` None when nothing restricts it."""

    state: TradingState
    scope: Scope | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.scope is None:
            return str(self.state)
        return f"{self.scope} is {self.state} ({self.reason})"


# Equal strictness: the broadest scope is named (the one an operator must resume).
_BREADTH = {k: i for i, k in enumerate(ScopeKind)}


def effective_state(
    states: Iterable[ScopeState],
    account: str,
    strategy: str | None,
    subscription: str,
    now: datetime | None = None,
) -> EffectiveState:
    """The strictest state among those covering this order's scopes. With `now`, a state whose
    `until_at` has come is over."""
    covering = {
        Scope.everything(),
        Scope.account(account),
        Scope.subscription(subscription),
    }
    if strategy is not None:
        covering.add(Scope.strategy(strategy))
    live = [
        s
        for s in states
        if s.scope in covering and (now is None or s.until_at is None or now < s.until_at)
    ]
    if not live:
        return EffectiveState(TradingState.ACTIVE)
    strictest = min(live, key=lambda s: (-s.state.strictness, _BREADTH[s.scope.kind]))
    if strictest.state is TradingState.ACTIVE:
        return EffectiveState(TradingState.ACTIVE)
    return EffectiveState(strictest.state, strictest.scope, strictest.reason)


def kept_state(existing: ScopeState | None, new: ScopeState, now: datetime) -> ScopeState:
    """What a scope's state becomes when `new` is set on it: a trip never loosens what is in
    force (a daily-loss `reduce_only` does not replace an operator's `halted`, nor end a halt
    that lasts until resumed at the next day's start). Of two equally strict states the one
    lasting longer is kept; an operator's command (`tradepipe halt`) replaces it as asked."""
    if existing is None or (existing.until_at is not None and now >= existing.until_at):
        return new
    if new.state.strictness != existing.state.strictness:
        return new if new.state.strictness > existing.state.strictness else existing
    if existing.until_at is None and new.until_at is not None:
        return existing
    return new


class LegKind(StrEnum):
    """What one order does to the position, as the states judge it."""

    ENTRY = "entry"  # from flat
    ADD = "add"  # grows a position on the same side
    REVERSAL_EXIT = "reversal_exit"  # closes the position before the reversal's entry
    REVERSAL_ENTRY = "reversal_entry"  # opens the other side after that exit
    EXIT = "exit"  # closes or reduces the position (a stop, a target, an exit signal)
    CANCEL = "cancel"
    BREAKEVEN = "breakeven"  # moves a working stop
    FLATTEN = "flatten"


_OPENS = frozenset({LegKind.ENTRY, LegKind.ADD, LegKind.REVERSAL_ENTRY})


@dataclass(frozen=True, slots=True)
class Leg:
    kind: LegKind
    side: Side
    quantity: Decimal


def split_order(position: Decimal, side: Side, quantity: Decimal) -> tuple[Leg, ...]:
    """A signed position and an order on it → its legs: an entry or an add, an exit, or a
    reversal's exit then entry (selling 15 while long 10: exit 10, then enter 5 short)."""
    if position == 0:
        return (Leg(LegKind.ENTRY, side, quantity),)
    if position * side.sign > 0:
        return (Leg(LegKind.ADD, side, quantity),)
    held = abs(position)
    if quantity <= held:
        return (Leg(LegKind.EXIT, side, quantity),)
    return (
        Leg(LegKind.REVERSAL_EXIT, side, held),
        Leg(LegKind.REVERSAL_ENTRY, side, quantity - held),
    )


def gate(state: EffectiveState, kind: LegKind, *, is_operator: bool = False) -> str | None:
    """None when the state lets this leg through, else the reason it is rejected.
    `reduce_only`: exits, cancels, breakeven and flatten pass; entries, adds and a reversal's
    entry leg do not. `halted`: no new order except an operator's flatten; a cancel is not a
    new order and passes (it can only lower risk)."""
    if state.state is TradingState.ACTIVE:
        return None
    if state.state is TradingState.REDUCE_ONLY:
        if kind in _OPENS:
            return f"{state}: {_WORDS[kind]} rejected; exits, cancels and flatten go through"
        return None
    if kind is LegKind.CANCEL or (kind is LegKind.FLATTEN and is_operator):
        return None
    return f"{state}: {_WORDS[kind]} rejected; only an operator's flatten goes through"


_WORDS = {
    LegKind.ENTRY: "an entry is",
    LegKind.ADD: "an add is",
    LegKind.REVERSAL_EXIT: "a reversal is",
    LegKind.REVERSAL_ENTRY: "the reversal's entry is",
    LegKind.EXIT: "an exit is",
    LegKind.CANCEL: "a cancel is",
    LegKind.BREAKEVEN: "a breakeven move is",
    LegKind.FLATTEN: "a strategy's flatten is",
}


class _Walk:
    """The positions as a plan's orders pass, and the legs each order is judged by. Each order
    acts on its own ticker's position: an option plan's orders are on different contracts (the
    put it closes, the call it buys); an order naming no ticker acts on the plan's own."""

    def __init__(self, position: Decimal, positions: Mapping[str, Decimal] | None) -> None:
        self.running: dict[str | None, Decimal] = dict((positions or {}).items())
        self.running[None] = position
        self.after: dict[str, Decimal] = {}  # a parent's leg → its position once it filled
        self.closed = False  # an order of this plan brought a held position to flat

    def held(self, order: PlannedOrder) -> Decimal:
        return self.running.get(order.ticker, Decimal(0))  # a contract not listed is flat

    def legs(self, order: PlannedOrder) -> tuple[Leg, ...]:
        """A bracket child is judged against the position its parent leaves; an entry-role
        order always opens (an entry, an add, or a reversal's entry once an exit of the same
        plan closed a position: closing the put before buying the call is a reversal too); a
        replacement (breakeven) that exits is a breakeven move."""
        held = self.held(order)
        if order.parent_leg is not None:
            return split_order(self.after.get(order.parent_leg, held), order.side, order.quantity)
        if order.role is OrderRole.ENTRY:
            if held == 0:
                kind = LegKind.REVERSAL_ENTRY if self.closed else LegKind.ENTRY
            elif held * order.side.sign > 0:
                kind = LegKind.ADD
            else:
                kind = LegKind.REVERSAL_ENTRY
            return (Leg(kind, order.side, order.quantity),)
        legs = split_order(held, order.side, order.quantity)
        if order.replaces is not None:
            return tuple(_as_breakeven(leg) for leg in legs)
        return legs

    def apply(self, order: PlannedOrder, quantity: Decimal) -> None:
        """The order went (for `quantity`): a child or a replacement moves nothing by itself
        (a child rests on its parent's fill; a replacement takes a working stop's place)."""
        if order.parent_leg is not None:
            return
        held = self.held(order)
        if order.replaces is not None:
            self.after[order.leg] = held
            return
        moved = held + order.side.sign * quantity
        self.closed = self.closed or (held != 0 and moved == 0)
        self.running[order.ticker] = moved
        self.after[order.leg] = moved


def _as_breakeven(leg: Leg) -> Leg:
    return replace(leg, kind=LegKind.BREAKEVEN) if leg.kind is LegKind.EXIT else leg


def order_legs(
    plan: Plan, position: Decimal, positions: Mapping[str, Decimal] | None = None
) -> list[tuple[PlannedOrder, tuple[Leg, ...]]]:
    """Each order of the plan with the legs the trading states judge it by, the positions
    walked as the plan's orders would move them: `position` for orders naming no ticker,
    `positions` (ticker → position) for orders that name theirs (an option plan's contracts).
    An exit followed by an entry of the other side (a reversal) is the reversal's exit."""
    walk = _Walk(position, positions)
    judged = []
    for order in plan.orders:
        judged.append((order, walk.legs(order)))
        walk.apply(order, order.quantity)
    reversing = False
    for index in range(len(judged) - 1, -1, -1):
        order, legs = judged[index]
        if order.parent_leg is not None:
            continue
        if legs[-1].kind is LegKind.REVERSAL_ENTRY:
            reversing = True
        elif reversing and [leg.kind for leg in legs] == [LegKind.EXIT]:
            judged[index] = (order, (replace(legs[0], kind=LegKind.REVERSAL_EXIT),))
            reversing = False
    return judged


def gate_plan(
    plan: Plan,
    position: Decimal,
    state: EffectiveState,
    positions: Mapping[str, Decimal] | None = None,
) -> Plan | Reject:
    """The plan as the trading state in force lets it through (SPEC §13), or why not. Each
    order is judged against its own ticker's position (`order_legs`).

    `active`: unchanged. A plan that only cancels passes every state (a cancel lowers risk).
    `reduce_only`: entries, adds and a reversal's entry leg are stripped (with their bracket
    children); exits and breakeven moves stay; an order that would cross flat is cut to its
    exit; the summary says what went and why. Nothing left: rejected (its cancels are not run
    alone: they would take a position's stops away for nothing). `halted`: a plan with any
    order is rejected whole (an operator's `tradepipe flatten` does not come through here)."""
    if state.state is TradingState.ACTIVE or not plan.orders:
        return plan
    if state.state is TradingState.HALTED:
        _, legs = order_legs(plan, position, positions)[0]
        return Reject(gate(state, legs[0].kind) or str(state))
    walk = _Walk(position, positions)
    kept: list[PlannedOrder] = []
    notes: list[str] = []
    dropped: set[str] = set()
    for order in plan.orders:
        if order.parent_leg in dropped:
            dropped.add(order.leg)  # its parent's note says why
            continue
        # Judged against what the orders kept so far hold, not what the whole plan would.
        legs = walk.legs(order)
        first = gate(state, legs[0].kind)
        if first is not None:
            dropped.add(order.leg)
            notes.append(first)
            continue
        rest = next((r for r in (gate(state, leg.kind) for leg in legs[1:]) if r), None)
        quantity = legs[0].quantity if rest is not None else order.quantity
        if rest is not None:  # it crosses flat: only its exit goes
            notes.append(rest)
        kept.append(replace(order, quantity=quantity))
        walk.apply(order, quantity)
    if not notes:
        return plan
    why = "; ".join(dict.fromkeys(notes))
    if not kept:
        return Reject(why)
    if not any(o.role is OrderRole.ENTRY for o in kept):  # nothing waits for the exit now
        kept = [replace(o, wait_for_fill=False) for o in kept]
    return replace(plan, orders=tuple(kept), summary=f"{plan.summary}; {why}")


def day_start(now: datetime, day_starts_at: str, timezone: str) -> datetime:
    """The start of the trading day `now` (aware) falls in: the latest `day_starts_at`
    ("HH:MM" in `timezone`) at or before it, in UTC-aware form as given."""
    zone = ZoneInfo(timezone)
    minutes = parse_minutes(day_starts_at)
    local = now.astimezone(zone)
    start = _local(local.date(), minutes, zone)
    if start > now:
        start = _local(local.date() - timedelta(days=1), minutes, zone)
    return start.astimezone(now.tzinfo)


def next_day_start(now: datetime, day_starts_at: str, timezone: str) -> datetime:
    """When the trading day after the one `now` is in starts: where a daily-loss trip ends."""
    zone = ZoneInfo(timezone)
    start = day_start(now, day_starts_at, timezone).astimezone(zone)
    following = start.date() + timedelta(days=1)
    return _local(following, parse_minutes(day_starts_at), zone).astimezone(now.tzinfo)


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    # A wall time skipped by a DST jump reads with the offset before it (fold=0), so 02:30 on
    # a spring-forward day is 03:30: the day still starts once.
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone)
