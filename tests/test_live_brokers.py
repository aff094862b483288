"""Against real broker test accounts: opt-in, never in CI (no network there).

Each test runs only when its environment variables are set, and only against a paper / test
account: it connects, reads the account, places one limit order far from the market under a
fresh client order id, finds it by that id, and cancels it. Nothing can fill.

    TRADEPIPE_LIVE_ALPACA_KEY, TRADEPIPE_LIVE_ALPACA_SECRET      Alpaca paper
    TRADEPIPE_LIVE_BINANCE_KEY, TRADEPIPE_LIVE_BINANCE_SECRET    Binance spot testnet
    TRADEPIPE_LIVE_IB_PORT (and TRADEPIPE_LIVE_IB_HOST)          a paper TWS / IB Gateway
"""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradepipe.config import AlpacaAccount, CcxtAccount, IbkrAccount
from tradepipe.config.credentials import Credentials
from tradepipe.core.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce


def need(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live test: set {', '.join(missing)} to run it")
    return {n: os.environ[n] for n in names}


def now() -> datetime:
    return datetime.now(UTC)


async def round_trip(broker, ticker: str, quantity: str, price: str, tif: TimeInForce) -> None:
    await broker.connect()
    try:
        summary = await broker.account()
        assert summary.equity >= 0
        cid = f"tplive-{secrets.token_hex(6)}"
        request = OrderRequest(
            cid,
            broker.name,
            ticker,
            Side.BUY,
            Decimal(quantity),
            OrderType.LIMIT,
            tif,
            limit_price=Decimal(price),
        )
        placed = await broker.submit(request)
        assert placed.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED), placed
        again = await broker.submit(request)  # the same id: answered by lookup, not re-sent
        assert again.broker_order_id == placed.broker_order_id
        found = await broker.get_order(cid, ticker=ticker)
        assert found is not None and found.client_order_id == cid
        canceled = await broker.cancel(cid, ticker=ticker)
        assert canceled is not None
    finally:
        await broker.close()


def test_alpaca_paper_round_trip():
    from tradepipe.brokers.alpaca.broker import AlpacaBroker

    env = need("TRADEPIPE_LIVE_ALPACA_KEY", "TRADEPIPE_LIVE_ALPACA_SECRET")
    keys = Credentials(
        env["TRADEPIPE_LIVE_ALPACA_KEY"], env["TRADEPIPE_LIVE_ALPACA_SECRET"], source="env"
    )
    broker = AlpacaBroker.from_config("alpaca-live-test", AlpacaAccount(paper=True), keys, now)
    asyncio.run(round_trip(broker, "AAPL", "1", "1.00", TimeInForce.DAY))


def test_binance_testnet_round_trip():
    from tradepipe.brokers.ccxt.broker import CcxtBroker

    env = need("TRADEPIPE_LIVE_BINANCE_KEY", "TRADEPIPE_LIVE_BINANCE_SECRET")
    keys = Credentials(
        env["TRADEPIPE_LIVE_BINANCE_KEY"], env["TRADEPIPE_LIVE_BINANCE_SECRET"], source="env"
    )
    account = CcxtAccount(exchange="binance", sandbox=True)
    broker = CcxtBroker.from_config("binance-live-test", account, keys, now)
    asyncio.run(round_trip(broker, "BTCUSDT", "0.001", "10000", TimeInForce.GTC))


def test_ib_paper_round_trip():
    from tradepipe.brokers.ibkr.broker import IbkrBroker

    env = need("TRADEPIPE_LIVE_IB_PORT")
    host = os.environ.get("TRADEPIPE_LIVE_IB_HOST", "127.0.0.1")
    account = IbkrAccount(host=host, port=int(env["TRADEPIPE_LIVE_IB_PORT"]), client_id=917)
    broker = IbkrBroker.from_config("ib-live-test", account, None, now)
    asyncio.run(round_trip(broker, "AAPL", "1", "1.00", TimeInForce.DAY))
