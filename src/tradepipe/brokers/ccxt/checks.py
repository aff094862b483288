"""An order's numbers checked before it is sent: written as the exchange's own precision
functions write them (never changed), and within the market's minimums."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.ccxt.markets import check_min_notional, check_min_quantity, check_written
from tradepipe.brokers.ccxt.orders import decimal
from tradepipe.core.model import OrderRequest
from tradepipe.errors import OrderRejected

if TYPE_CHECKING:
    from tradepipe.brokers.ccxt.broker import CcxtBroker


def on_step(
    broker: CcxtBroker, value: Decimal, field: str, market: dict[str, Any], is_price: bool
) -> Decimal:
    """The value as the exchange's own precision function writes it; one it would change is
    refused, so that what the journal holds is what was sent."""
    symbol = market["symbol"]
    try:
        with broker._errors():
            if is_price:
                written = broker.exchange.price_to_precision(symbol, float(value))
            else:
                written = broker.exchange.amount_to_precision(symbol, float(value))
    except OrderRejected as e:
        raise OrderRejected(f"{field} {value} of {symbol}: {e}") from None
    return check_written(
        value,
        written,
        field=field,
        is_price=is_price,
        market=market,
        precision_mode=broker.exchange.precisionMode,
        exchange_id=broker.exchange.id,
    )


async def checked_amount(
    broker: CcxtBroker, request: OrderRequest, market: dict[str, Any], price: float | None
) -> float:
    """The quantity, checked against the market's minimums. (A spot sell beyond the free
    balance is the exchange's to refuse: `capabilities.short_selling` keeps planning from
    asking for one, and Binance's own words say why.)"""
    quantity = on_step(broker, request.quantity, "quantity", market, False)
    rules = await broker.instrument(request.ticker)
    check_min_quantity(quantity, rules, market["symbol"], broker.exchange.id)
    if rules.min_notional is not None:
        reference = decimal(price) or await broker.quote(request.ticker)
        check_min_notional(quantity, reference, rules, market, broker.exchange.id)
    return float(quantity)
