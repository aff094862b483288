"""The risk limits' pre-trade check (SPEC §13): each entry of a plan against
`core.limits.check_order`, with the figures `RiskLimits` keeps in memory (engine/risk.py), the
account's equity asked of the broker once when no snapshot has told it yet."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.core.decision import reference_price
from tradepipe.core.limits import (
    AccountFigures,
    Deny,
    Figures,
    Limits,
    OrderCheck,
    Reduce,
    check_order,
    without_equity,
)
from tradepipe.core.model import OrderRole
from tradepipe.core.plan import Plan, Reject
from tradepipe.core.risk import resize_entry, without_entries
from tradepipe.core.tally import last_minute

if TYPE_CHECKING:
    from tradepipe.engine.pretrade import Context
    from tradepipe.engine.risk import RiskLimits

log = logging.getLogger("tradepipe.engine.risk")


async def vet(risk: RiskLimits, plan: Plan, context: Context) -> Plan | Reject:
    """The plan with each entry allowed, reduced (with its bracket legs) or dropped by the
    limits; a Reject naming the limit when nothing is left. Exits always pass."""
    entries = [o for o in plan.orders if o.role is OrderRole.ENTRY]
    if not entries:
        return plan
    market = context.market
    key = (context.account, context.intent.ticker)
    risk.multipliers[key] = market.multiplier
    price = reference_price(context.intent, market) or context.intent.signal_price
    if price is not None:
        risk.prices[key] = price
    limits = risk.limits_for(context.subscription)
    notes = []
    account_figures = await _account_figures(risk, context, plan, limits)
    if account_figures is None:
        # Without the equity a share of it means nothing, nor does a loss from it: those
        # limits are left out (and said so); the amounts, counts and the rate still hold.
        limits, left_out = without_equity(limits)
        if left_out:
            notes.append(f"{', '.join(left_out)} not checked: the equity is unknown")
        account_figures = AccountFigures(
            equity=Decimal(0),
            day_start_equity=Decimal(0),
            high_water_mark=Decimal(0),
            positions=risk.position_values(context.account),
            orders_last_minute=last_minute(
                risk.account_tally(context.account, risk.clock()).sent, risk.clock()
            ),
        )
    figures = Figures(account_figures, risk.subscription_figures(context.subscription))
    now = market.now or risk.clock()
    for entry in entries:
        check = OrderCheck(
            ticker=context.intent.ticker,
            side=entry.side,
            quantity=entry.quantity,
            price=price if price is not None else Decimal(0),
            is_entry=True,
            multiplier=market.multiplier,
            lot_size=market.lot_size,
        )
        decision = check_order(check, figures, limits, now)
        if isinstance(decision, Deny):  # a reversal keeps its exit
            left = without_entries(plan, decision.reason)
            return left if isinstance(left, Plan) else Reject(decision.reason)
        if isinstance(decision, Reduce):
            plan = resize_entry(plan, entry.leg, decision.quantity)
            notes.append(decision.reason)
    valued = limits.account.max_order_value or limits.account.max_gross_exposure
    if price is None and valued is not None:
        notes.append("the order's value was not checked: no price to value it at")
    if notes:
        plan = replace(plan, summary=f"{plan.summary}; {'; '.join(notes)}")
    return plan


async def _account_figures(
    risk: RiskLimits, context: Context, plan: Plan, limits: Limits
) -> AccountFigures | None:
    """The account's figures now; None when its equity is unknown (no snapshot yet and
    the broker would not say)."""
    account = context.account
    now = risk.clock()
    tally = risk.account_tally(account, now)
    if tally.equity is None:  # no snapshot yet: ask the broker once
        try:
            summary = await risk.current.brokers[account].account()
        except Exception as e:  # the limits that need no equity still hold
            log.warning("risk limits of %s: the equity is unknown: %s", account, e)
            return None
        tally.equity, tally.equity_at = summary.equity, now
        tally.high_water_mark = max(tally.high_water_mark or summary.equity, summary.equity)
        if tally.day_start_equity is None:
            tally.day_start_equity = summary.equity
    equity = tally.equity
    assert equity is not None and tally.day_start_equity is not None
    positions: dict[str, Decimal] = {}
    if limits.account.max_gross_exposure or limits.account.max_open_positions:
        positions = risk.position_values(account)
        positions.update(_after_exits(risk, context, plan))
    return AccountFigures(
        equity=equity,
        day_start_equity=tally.day_start_equity,
        high_water_mark=max(tally.high_water_mark or equity, equity),
        positions=positions,
        orders_last_minute=last_minute(tally.sent, now),
    )


def _after_exits(risk: RiskLimits, context: Context, plan: Plan) -> dict[str, Decimal]:
    """The value of this ticker, and of each one the plan exits, once its exits filled (a
    reversal's exit fills before its entry). Each exit moves its own ticker: an option
    plan closes the put before it buys the call."""
    account, own = context.account, context.intent.ticker
    held = {own: context.market.position}
    for order in plan.orders:
        if order.role is OrderRole.EXIT:
            ticker = order.ticker or own
            before = held.get(ticker, context.positions.get(ticker, Decimal(0)))
            held[ticker] = before + order.quantity * order.side.sign
    return {
        ticker: quantity
        * risk.prices.get((account, ticker), Decimal(0))
        * risk.multiplier(account, ticker)
        for ticker, quantity in held.items()
    }
