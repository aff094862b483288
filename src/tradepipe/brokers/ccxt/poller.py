"""The poller: ccxt (without "pro") has no order stream, so the open orders of the markets
with watched orders are looked at about once a second, and what changed is reported."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tradepipe.errors import BrokerError

if TYPE_CHECKING:
    from tradepipe.brokers.ccxt.broker import CcxtBroker

log = logging.getLogger(__name__)


async def poll_forever(broker: CcxtBroker) -> None:
    while True:
        await asyncio.sleep(broker.poll_interval)
        if not broker._watch or broker._reporter.listener is None:
            continue
        try:
            await broker.poll()
        except BrokerError as e:  # the next round tries again; nothing is lost meanwhile
            log.warning("%s: polling orders: %s", broker.name, e)
        except Exception:
            log.exception("%s: polling orders", broker.name)


async def poll(broker: CcxtBroker) -> None:
    """One round: report every watched order whose status or fills changed. A market or
    an order that cannot be read this round is logged and tried again next round; it never
    stops the others from being reported (an unreported entry fill leaves its emulated
    stop-loss unplaced)."""
    for symbol in sorted(set(broker._watch.values())):
        try:
            with broker._errors():
                listed = await broker.exchange.fetch_open_orders(symbol)
        except BrokerError as e:
            log.warning("%s: polling %s: %s", broker.name, symbol, e)
            continue
        still_open = set()
        for order in listed:
            cid = order.get("clientOrderId")
            if cid in broker._watch:
                still_open.add(cid)
                await _poll_one(broker, cid, symbol, order)
        for cid in [c for c, s in broker._watch.items() if s == symbol and c not in still_open]:
            await _poll_one(broker, cid, symbol, None)


async def _poll_one(
    broker: CcxtBroker, cid: str, symbol: str, order: dict[str, Any] | None
) -> None:
    try:
        if order is not None:
            broker._report(await broker._state(order, cid, symbol))
            return
        state = await broker._look_up(cid, symbol)
    except Exception as e:  # one unreadable answer must not silence the rest
        log.warning("%s: polling order %s: %s", broker.name, cid, e)
        return
    if state is None:  # never reached the exchange: the engine settles it by id
        broker._watch.pop(cid, None)
    else:
        broker._report(state)
