"""Deciding one delivery: read what the broker says now (position, quote, open orders, equity,
the instrument's rules), plan with `tradepipe.core`, then apply a reconciliation's block. Reads
only: a delivery and a dry run (`tradepipe replay ID`) decide the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.brokers.base import Broker, canonical_ticker
from tradepipe.core.model import OrderState, OrderStatus, OrderType
from tradepipe.core.plan import Market, Plan, Reject, RestingStop, Skip, make_plan
from tradepipe.core.reconcile import Difference
from tradepipe.core.resolve import Intent
from tradepipe.core.risk import without_entries
from tradepipe.core.signal import QuantityType
from tradepipe.core.support import fit_to_broker, refuse_unsupported
from tradepipe.engine.contracts import ContractLists, exchange_date, parse_continuous
from tradepipe.engine.current import Current
from tradepipe.engine.option_planner import plan_options
from tradepipe.engine.pretrade import Context, PreTrade
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Config

EQUITY_TYPES = frozenset({QuantityType.PERCENT_OF_EQUITY, QuantityType.RISK_PERCENT})
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


class Planner:
    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        blocked: Mapping[tuple[str, str], Difference],
        pretrade: PreTrade,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.blocked = blocked
        self.pretrade = pretrade
        self.contracts = ContractLists()

    async def decide(
        self,
        intent: Intent,
        account: str,
        *,
        subscription: str,
        strategy: str | None,
        broker: Broker | None = None,
        config: Config | None = None,
    ) -> Plan | Skip | Reject:
        """Plan against what the broker says now (reads only), apply any block, then the
        pre-trade check (trading states and risk limits). A delivery passes the broker and
        config it started with (a reload may have swapped both since)."""
        broker = broker if broker is not None else self.current.brokers[account]
        config = config if config is not None else self.current.config
        refused = refuse_unsupported(intent, account, broker.capabilities)
        if refused is not None:
            return refused
        asked = intent.ticker
        facts: tuple[str, ...] = ()
        if parse_continuous(asked) is not None:  # ES1! trades the dated contract it maps to
            mapped = await self.contracts.map_continuous(
                asked,
                account,
                broker,
                exchange_date(self.clock()),
                config.accounts[account].roll_days_before_expiry,
            )
            if isinstance(mapped, Reject):
                return mapped
            if mapped is not None:  # its position, its orders; the lane stays ES1!'s
                intent = replace(intent, ticker=canonical_ticker(broker, mapped.contract.symbol))
                facts = (mapped.fact,)
        if intent.option_fields:
            decision, context, tickers = await plan_options(
                self, intent, account, broker, config, strategy, subscription
            )
            facts += decision.facts
        else:
            market = await self.market(intent, account, broker, config)
            decision = fit_to_broker(
                make_plan(intent, market), intent, account, broker.capabilities
            )
            context, tickers = (
                Context(account, strategy, subscription, intent, market),
                (intent.ticker,),
            )
        for ticker in tickers:
            difference = self.blocked.get((account, ticker))
            if difference is not None and isinstance(decision, Plan):
                why = (
                    f"new entries on {ticker} are blocked until the journal and the broker"
                    f" agree: {difference.describe()} (block_entries_on_mismatch)"
                )
                decision = without_entries(decision, why)
        if isinstance(decision, Plan) and context is not None:
            decision = await self.pretrade.vet(decision, context)
        if intent.ticker != asked and isinstance(decision, Plan):
            orders = tuple(replace(o, ticker=o.ticker or intent.ticker) for o in decision.orders)
            decision = replace(decision, orders=orders)
        if facts:
            decision = replace(decision, facts=facts)
        return decision

    async def market(self, intent: Intent, account: str, broker: Broker, config: Config) -> Market:
        """What the broker says now of the intent's ticker."""
        ticker = intent.ticker
        position = await broker.position(ticker)
        quote = await broker.quote(ticker) if broker.capabilities.quotes else None
        open_orders = await broker.open_orders(ticker)
        equity = None
        if intent.quantity_type in EQUITY_TYPES:
            equity = (await broker.account()).equity
        rules = await broker.instrument(ticker)
        lot_size = rules.lot_size or broker.capabilities.lot_size
        return Market(
            position=position.quantity,
            average_price=position.average_price,
            reference_price=quote or intent.signal_price,
            equity=equity,
            has_open_orders=bool(open_orders) or self._holds_children(account, ticker),
            lot_size=lot_size if intent.fractional else max(lot_size, Decimal(1)),
            tick_size=rules.tick_size,
            now=self.clock(),
            stops=_resting_stops(open_orders),
            allow_leverage=config.accounts[account].allow_leverage,
            multiplier=rules.multiplier,
            kind=rules.kind,
        )

    def _holds_children(self, account: str, ticker: str) -> bool:
        return any(
            c["status"] == OrderStatus.HELD for c in self.journal.bracket_children(account, ticker)
        )


def _resting_stops(open_orders: list[OrderState]) -> tuple[RestingStop, ...]:
    """The working stop orders among a ticker's open orders, for breakeven to move."""
    return tuple(
        RestingStop(
            client_order_id=o.client_order_id,
            side=o.side,
            quantity=o.quantity - o.filled_quantity,
            order_type=o.order_type,
            stop_price=o.stop_price,
            limit_price=o.limit_price,
        )
        for o in open_orders
        if o.order_type in STOP_TYPES and o.side is not None and o.quantity is not None
    )
