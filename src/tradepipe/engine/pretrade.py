"""The pre-trade check (SPEC §13): every decided plan passes here before it is journaled as
`planned`, in a delivery and in a dry run (`tradepipe replay ID`) alike.

Two steps, in this order: the trading states in force (`states`: a halt or reduce-only strips
or rejects what they forbid), then the risk limits (`limits`: allow, reduce or deny each entry
against the account's figures). Each step answers the plan it lets through or a `Reject` naming
the state or limit, its value and the figure. Both keep what they read in memory: the check is
on the signal→submit path and must stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tradepipe.core.plan import Market, Plan, Reject
from tradepipe.core.resolve import Intent
from tradepipe.core.trading_states import LegKind, gate, gate_plan
from tradepipe.engine.risk import RiskLimits
from tradepipe.engine.trading_states import TradingStates


@dataclass(frozen=True, slots=True)
class Context:
    """What one plan was decided for, and against what the broker said. An option plan's
    orders each name their contract: `positions` holds what the broker said of each (the put
    it closes, the call it buys), which the trading states judge each order against; `market`
    is its last leg's."""

    account: str
    strategy: str | None  # None: an operator's command outside any strategy
    subscription: str
    intent: Intent
    market: Market
    positions: Mapping[str, Decimal] = field(default_factory=dict)


class PreTrade:
    def __init__(self, states: TradingStates, limits: RiskLimits | None = None) -> None:
        self.states = states
        self.limits = limits

    async def vet(self, plan: Plan, context: Context) -> Plan | Reject:
        """The plan as the trading states and the limits let it through, or why not."""
        # 1. The trading states (in memory: no SQL on the signal path).
        state = self.states.effective(context.account, context.strategy, context.subscription)
        gated = gate_plan(plan, context.market.position, state, context.positions)
        if isinstance(gated, Reject):
            return gated
        plan = gated
        if self.limits is not None:  # the risk limits (engine/risk.py)
            return await self.limits.vet(plan, context)
        return plan

    def refuses_entry_after_wait(
        self, account: str, strategy: str | None, subscription: str
    ) -> str | None:
        """A reversal's entry goes out only once its exit has filled, seconds after the plan
        was vetted: a halt or reduce-only set meanwhile still stops it (why), else None."""
        state = self.states.effective(account, strategy, subscription)
        return gate(state, LegKind.REVERSAL_ENTRY)
