"""Planning a signal with option fields (SPEC §15): the contracts held for the underlying decide
what to close and which right to buy (`core.option_positions`), the chain and the underlying's
price choose the contract (`core.options.select_contract`), and each leg is planned against its
contract with the ordinary planning (sizing, caps and limits at the contract's price × 100).

Market orders only: a signal's limitPrice, stopPrice and take-profit / stop-loss prices are the
underlying's (what a TradingView alert knows), never the contract's, so sending them on a
contract order would trade something the signal did not ask for.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.brokers.base import Broker, canonical_ticker
from tradepipe.core.decision import Decision, Plan, PlannedOrder, Reject
from tradepipe.core.instruments import parse_future
from tradepipe.core.model import OrderType
from tradepipe.core.option_positions import Held, OptionMoves, option_moves, parse_occ
from tradepipe.core.options import NoContract, OptionRight, select_contract
from tradepipe.core.plan import make_plan
from tradepipe.core.prices import show
from tradepipe.core.resolve import Intent
from tradepipe.core.signal import Action, Sentiment
from tradepipe.core.support import fit_to_broker
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.engine.contracts import exchange_date
from tradepipe.engine.pretrade import Context
from tradepipe.errors import OrderRejected

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.engine.planner import Planner

_EQUITY = re.compile(r"[A-Z]{1,6}")

Planned = tuple[Decision, Context | None, tuple[str, ...]]


def _refuse(intent: Intent) -> str | None:
    ask = intent.option_ask
    if ask is None:
        return (
            f"option fields without optionType ({', '.join(intent.option_fields)}): say"
            " optionType call, put or both; nothing was sent"
        )
    if intent.entry_order_type is not OrderType.MARKET or (
        intent.exit_order_type is not OrderType.MARKET
    ):
        kinds = f"{intent.entry_order_type} entries, {intent.exit_order_type} exits"
        return (
            f"options are traded with market orders only ({kinds} asked): the signal's prices"
            " are the underlying's, not the contract's; nothing was sent"
        )
    if intent.take_profit is not None or intent.stop_loss is not None:
        return (
            "options take no takeProfit / stopLoss yet: their prices would be the underlying's,"
            " not the contract's; nothing was sent"
        )
    return None


async def plan_options(
    planner: Planner,
    intent: Intent,
    account: str,
    broker: Broker,
    config: Config,
    strategy: str | None,
    subscription: str,
) -> Planned:
    """The plan for a signal with option fields, the context of its last leg for the pre-trade
    check, and the tickers it touches (for reconciliation blocks)."""
    refused = _refuse(intent)
    if refused is not None:
        return Reject(refused), None, ()
    ask = intent.option_ask
    assert ask is not None
    underlying = default_canonical_ticker(intent.ticker)
    if not _EQUITY.fullmatch(underlying) or parse_future(underlying) is not None:
        # Its contracts would not be OCC symbols, so nothing would know they are worth 100.
        return (
            Reject(
                f"options are traded for US equity underlyings only ({underlying} is not one:"
                " OCC roots are 1-6 letters); nothing was sent"
            ),
            None,
            (),
        )
    held = tuple(
        Held(p.ticker, occ.right, p.quantity)
        for p in await broker.positions()
        if p.quantity != 0 and (occ := parse_occ(p.ticker)) and occ.underlying == underlying
    )
    moves = option_moves(
        intent.action,
        ask.option_type,
        held,
        allow_add=intent.allow_add,
        sentiment=intent.sentiment,
        underlying=underlying,
    )
    if not isinstance(moves, OptionMoves):
        return moves, None, ()
    leg_intent = replace(
        intent,
        option_fields=(),
        option_ask=None,
        signal_price=None,  # the underlying's: never a contract's price
        sides="both",  # options are bought either way: a put is the bearish entry
    )
    orders: list[PlannedOrder] = []
    summaries: list[str] = []
    context: Context | None = None
    positions: dict[str, Decimal] = {}  # each contract's, for the trading states
    tickers = [intent.ticker]
    for i, contract in enumerate(moves.closes):
        closing = replace(
            leg_intent,
            ticker=contract.symbol,
            action=Action.EXIT,
            # An exit keeps its quantity / percent; a close before an entry closes it all.
            sentiment=intent.sentiment if intent.action is Action.EXIT else Sentiment.FLAT,
        )
        market = await planner.market(closing, account, broker, config)
        decided = make_plan(closing, market)
        if not isinstance(decided, Plan):
            return type(decided)(f"{contract.symbol}: {decided.reason}"), None, ()
        leg = "exit" if i == 0 else f"exit{i + 1}"
        orders += [replace(o, leg=leg, ticker=contract.symbol) for o in decided.orders]
        summaries.append(decided.summary)
        positions[contract.symbol] = market.position
        context = Context(account, strategy, subscription, closing, market, positions)
        tickers.append(contract.symbol)
    facts: list[str] = []
    if moves.open_right is not None:
        chosen = await _choose(planner, intent, account, broker, moves.open_right)
        if isinstance(chosen, Reject):
            return chosen, None, ()
        symbol, facts = chosen
        entry = replace(leg_intent, ticker=symbol, action=Action.BUY, sentiment=None)
        market = await planner.market(entry, account, broker, config)
        decided = make_plan(entry, market)
        if isinstance(decided, Plan):
            if orders:  # the close fills before the other contract is bought
                orders[-1] = replace(orders[-1], wait_for_fill=True)
            orders += [replace(o, ticker=symbol) for o in decided.orders]
            summaries.append(decided.summary)
            positions[symbol] = market.position
            context = Context(account, strategy, subscription, entry, market, positions)
            tickers.append(symbol)
        elif orders:
            summaries.append(f"no {symbol} bought: {decided.reason}")
        else:
            return type(decided)(decided.reason, tuple(facts)), None, ()
    plan = Plan(f"{'; '.join(summaries)} ({moves.why})", tuple(orders), facts=tuple(facts))
    return fit_to_broker(plan, intent, account, broker.capabilities), context, tuple(tickers)


async def _choose(
    planner: Planner, intent: Intent, account: str, broker: Broker, right: OptionRight
) -> tuple[str, list[str]] | Reject:
    """The contract to buy, and the facts that chose it; or why there is none."""
    ask = intent.option_ask
    assert ask is not None
    underlying = default_canonical_ticker(intent.ticker)
    try:
        chain = await planner.contracts.chain(account, broker, underlying)
    except OrderRejected as e:
        return Reject(f"no option chain for {underlying}: {e}; nothing was sent")
    quote = await broker.quote(underlying) if broker.capabilities.quotes else None
    price = quote or intent.signal_price
    if price is None and ask.strike_price is None:
        return Reject(
            f"no price of {underlying} to count strikes from: the broker has no quote and the"
            " signal no signalPrice; nothing was sent"
        )
    today = exchange_date(planner.clock())
    # `both` picks by direction; call and put pick themselves (moves chose the same right).
    selection = select_contract(
        chain, price or Decimal(0), today, ask, bullish=right is OptionRight.CALL
    )
    if isinstance(selection, NoContract):
        return Reject(f"no {underlying} option contract fits: {selection.reason}")
    contract = selection.contract
    symbol = canonical_ticker(broker, contract.symbol)  # as its positions and fills name it
    where = "quote" if quote else "signalPrice"
    facts = [
        f"contract {symbol}: {contract.right} {show(contract.strike)} expiring"
        f" {contract.expiration.isoformat()} (multiplier {show(contract.multiplier)})",
        *selection.facts,
        f"{underlying} price {show(price) if price else 'not needed'}"
        + (f" ({where})" if price else "")
        + f"; {len(chain)} contracts in the chain; today {today.isoformat()}",
    ]
    return symbol, facts
