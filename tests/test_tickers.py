"""Canonical tickers: one instrument is one lane, one journal position and one reconciliation
subject, whatever spelling the alert used (`NASDAQ:AAPL`, `AAPL`; `BINANCE:BTCUSDT`, `BTC/USDT`).
Each adapter's spelling, table-driven; then the engine with the real paper broker and the fake
TWS, on a real journal file."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.fakes.tws import FakeTws
from tests.helpers import FixedClock, write_config
from tests.test_ccxt import connected
from tests.test_engine import Harness, run
from tests.test_ibkr import IB_ACCOUNT, until
from tradepipe.brokers.alpaca.broker import AlpacaBroker
from tradepipe.brokers.base import canonical_ticker
from tradepipe.brokers.ccxt.markets import market_ticker
from tradepipe.brokers.ibkr.translation import canonical as ib_canonical
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.daemon.serve import Actions
from tradepipe.engine import Engine
from tradepipe.journal import Journal

D = Decimal

# -- each broker's spelling ----------------------------------------------------------------

DEFAULT = [
    ("AAPL", "AAPL"),
    ("NASDAQ:AAPL", "AAPL"),
    ("nasdaq:aapl", "AAPL"),
    ("  NYSE:BRK.B ", "BRK.B"),
    ("CME_MINI:MNQZ2026", "MNQZ2026"),
    ("SPY 261218C00600000", "SPY 261218C00600000"),
    ("SPY261218C00600000", "SPY 261218C00600000"),
    ("OPRA:SPY  261218C00600000", "SPY 261218C00600000"),
    ("BTC/USD", "BTC/USD"),
    ("BTC/USDT:USDT", "BTC/USDT:USDT"),  # a colon after a slash is no exchange prefix
    ("BINANCE:BTCUSDT", "BTCUSDT"),
]


@pytest.mark.parametrize(("ticker", "canonical"), DEFAULT)
def test_the_default_spelling(ticker, canonical):
    assert default_canonical_ticker(ticker) == canonical


@pytest.mark.parametrize(("ticker", "canonical"), DEFAULT)
def test_the_paper_broker_spells_the_default_way(tmp_path: Path, ticker, canonical):
    journal = Journal.open(tmp_path / "journal.db")
    try:
        paper = PaperBroker("paper", journal, cash=D(1000), clock=FixedClock())
        assert paper.canonical_ticker(ticker) == canonical
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("ticker", "canonical"),
    [
        ("AAPL", "AAPL"),
        ("NASDAQ:aapl", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("BTC/USD", "BTC/USD"),  # as Alpaca's orders name a pair
        ("BTCUSD", "BTC/USD"),  # as TradingView does
        ("COINBASE:BTCUSD", "BTC/USD"),
        ("ethusdt", "ETH/USDT"),
        ("ETHBTC", "ETH/BTC"),
        ("DOGEUSDC", "DOGE/USDC"),
        ("FBTC", "FBTC"),  # a stock (five letters at most) that ends like a quote currency
        ("SETH", "SETH"),
        ("SPY 261218C00600000", "SPY261218C00600000"),  # Alpaca's OCC symbols have no space
        ("SPY261218C00600000", "SPY261218C00600000"),
    ],
)
def test_alpacas_spelling(ticker, canonical):
    broker = AlpacaBroker("alpaca", None, None, None, None, clock=FixedClock(), timeout=1)  # type: ignore[arg-type]
    assert broker.canonical_ticker(ticker) == canonical


def _market(symbol: str, market_type: str = "spot") -> dict:
    base, quote = symbol.split(":")[0].split("/")
    return {"id": base + quote, "symbol": symbol, "type": market_type, "active": True}


MARKETS = {m["symbol"]: m for m in map(_market, ["BTC/USDT", "ETH/BTC", "BTC/FDUSD"])}
MARKETS_BY_ID = {m["id"]: [m] for m in MARKETS.values()}


@pytest.mark.parametrize(
    ("ticker", "loaded", "unloaded"),
    [
        ("BTCUSDT", "BTCUSDT", "BTCUSDT"),
        ("BINANCE:BTCUSDT", "BTCUSDT", "BTCUSDT"),
        ("binance:btcusdt", "BTCUSDT", "BTCUSDT"),
        ("BTC/USDT", "BTCUSDT", "BTCUSDT"),
        ("BTCUSDT.P", "BTCUSDT", "BTCUSDT"),
        ("BTC/FDUSD", "BTCFDUSD", "BTCFDUSD"),
        ("ETH/BTC", "ETHBTC", "ETHBTC"),
        ("DOGEUSDT", "DOGEUSDT", "DOGEUSDT"),  # no such market: refused when it is traded
    ],
)
def test_ccxts_spelling_is_the_market_id_with_or_without_the_markets(ticker, loaded, unloaded):
    """Binance's market id is TradingView's spelling: the same answer before `load_markets`
    (a broker down at start) as after, so one instrument never gets two lanes."""
    assert market_ticker(MARKETS, MARKETS_BY_ID, ticker, "spot") == loaded
    assert market_ticker({}, {}, ticker, "spot") == unloaded


def test_the_ccxt_adapter_reports_positions_and_orders_under_its_spelling():
    async def test():
        with FakeBinance() as fake:
            async with connected(fake) as broker:
                assert broker.canonical_ticker("BINANCE:ETHUSDT") == "ETHUSDT"
                position = await broker.position("BTC/USDT")
                assert position.ticker == "BTCUSDT"

    asyncio.run(test())


IB_TRADABLE = st.one_of(
    st.from_regex(r"[A-Z][A-Z0-9.]{0,9}", fullmatch=True),  # stocks, "BRK.B"
    st.from_regex(r"[A-Z0-9]{1,6}[FGHJKMNQUVXZ]20[0-9]{2}", fullmatch=True),  # futures
    st.from_regex(r"[A-Z]{1,6} {0,2}[0-9]{6}[CP][0-9]{8}", fullmatch=True),  # OCC options
)


@given(
    prefix=st.sampled_from(["", "NASDAQ:", "nyse:", "CME_MINI:", "CBOT:"]),
    body=IB_TRADABLE,
    lower=st.booleans(),
    pad=st.sampled_from(["", " "]),
)
def test_the_default_spelling_is_ibs_for_every_ticker_ib_trades(prefix, body, lower, pad):
    """IB's adapter declares no spelling of its own: the engine spells its tickers the default
    way, which must be IB's (ibkr_translation.canonical, what IB reports positions under)."""
    ticker = pad + prefix + (body.lower() if lower else body) + pad
    assert default_canonical_ticker(ticker) == ib_canonical(ticker)
    assert canonical_ticker(object(), ticker) == ib_canonical(ticker)


SPELLINGS = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"([A-Za-z_]{1,8}:)?[A-Za-z0-9./ :]{1,20}", fullmatch=True),
)


@given(SPELLINGS)
def test_every_spelling_is_idempotent(ticker):
    alpaca = AlpacaBroker("alpaca", None, None, None, None, clock=FixedClock(), timeout=1)  # type: ignore[arg-type]
    spellings = [
        default_canonical_ticker,
        alpaca.canonical_ticker,
        lambda t: market_ticker(MARKETS, MARKETS_BY_ID, t, "spot"),
        lambda t: market_ticker({}, {}, t, "spot"),
    ]
    for spell in spellings:
        once = spell(ticker)
        assert spell(once) == once, (ticker, once)


def buy(ticker: str, quantity: int = 5, **extra) -> dict:
    return {"ticker": ticker, "action": "buy", "quantity": quantity, "signalPrice": 100, **extra}


# -- the engine ----------------------------------------------------------------------------


def test_a_prefixed_ticker_at_ib_reconciles_with_ibs_own_symbol(tmp_path: Path):
    """IB names `NASDAQ:AAPL` "AAPL": the journal must too, or reconciliation sees a position
    the journal does not hold under "AAPL", and blocks entries on a false alarm."""
    with FakeTws() as fake:
        fake.set_price("AAPL", 100)
        config = write_config(
            tmp_path, IB_ACCOUNT.format(port=fake.port), subscription="enabled = false\n"
        )

        async def test(h: Harness):
            (signal_id,) = await h.send(buy("NASDAQ:AAPL", 10))
            (order,) = h.journal.orders(signal_id=signal_id)
            cid = order["client_order_id"]
            await until(lambda: h.journal.order_by_client_id(cid)["status"] == "filled")
            await h.engine.drain()
            assert await h.engine.reconcile_account("ib") == []
            assert h.engine.blocked == {}
            assert [(p["ticker"], D(p["quantity"])) for p in h.journal.positions()] == [
                ("AAPL", 10)
            ]
            assert order["ticker"] == "AAPL"
            # What came in is kept as it came.
            assert h.journal.signal(signal_id)["ticker"] == "NASDAQ:AAPL"

        run(config, test)


def test_two_spellings_of_one_instrument_are_one_position(tmp_path: Path):
    async def test(h: Harness):
        (first,) = await h.send(buy("NASDAQ:AAPL"))
        (again,) = await h.send(buy("aapl"))  # same instrument: already long, not doubled
        assert h.deliveries(again) == [("skipped", "already long 5 (allow_add = false)")]
        (exit_,) = await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 101})
        assert h.deliveries(exit_)[0][0] == "submitted"
        assert h.position("AAPL") == 0
        assert await h.engine.brokers["paper"].positions() == []
        assert {d["ticker"] for d in h.journal.deliveries_for([first, again, exit_])} == {"AAPL"}
        assert [h.journal.signal(s)["ticker"] for s in (first, again, exit_)] == [
            "NASDAQ:AAPL",
            "aapl",
            "AAPL",
        ]
        assert await h.engine.reconcile_account("paper") == []

    run(write_config(tmp_path), test)


def test_an_exit_spelled_otherwise_than_the_entry_closes_the_position(tmp_path: Path):
    async def test(h: Harness):
        await h.send(buy("AAPL"))
        (exit_,) = await h.send({"ticker": "NASDAQ:AAPL", "action": "exit", "signalPrice": 101})
        assert h.deliveries(exit_)[0][0] == "submitted"
        assert h.position("AAPL") == 0

    run(write_config(tmp_path), test)


class VerbatimPaper(PaperBroker):
    """The paper broker as it was before tickers were canonical: an instrument is named as the
    alert spelled it (and so the engine too)."""

    def canonical_ticker(self, ticker: str) -> str:
        return ticker


class Earlier(Harness):
    def new_engine(self) -> Engine:
        paper = VerbatimPaper("paper", self.journal, cash=D(100000), clock=self.clock)
        return Engine(self.config, self.journal, {"paper": paper}, self.clock)


def test_a_journal_written_before_tickers_were_canonical_is_read_as_one_instrument(tmp_path):
    """What an earlier version journaled under `NASDAQ:AAPL` (orders, fills, the position, the
    paper broker's books and its resting take-profit) stays as it was, and is read as AAPL's:
    no false drift at start, one position for new signals, and the old order still fills."""
    config = write_config(tmp_path)

    async def earlier(h: Harness):
        await h.send(buy("NASDAQ:AAPL", 10, takeProfit={"limitPrice": 120}))
        assert h.position("NASDAQ:AAPL") == 10

    run(config, earlier, Earlier)

    async def now(h: Harness):
        assert h.engine.blocked == {}  # reconciled at start
        assert await h.engine.reconcile_account("paper") == []
        paper = h.engine.brokers["paper"]
        assert [(p.ticker, p.quantity) for p in await paper.positions()] == [("AAPL", 10)]
        ((take_profit, ticker),) = [
            (o.client_order_id, o.ticker) for o in await paper.open_orders()
        ]
        assert ticker == "AAPL"  # reported under the one spelling, whatever its row holds
        assert [o.client_order_id for o in await paper.open_orders("AAPL")] == [take_profit]
        (again,) = await h.send(buy("AAPL", 10))
        assert h.deliveries(again) == [("skipped", "already long 10 (allow_add = false)")]
        await h.send({"ticker": "AAPL", "action": "cancel", "signalPrice": 121})  # crosses 120
        assert h.journal.order_by_client_id(take_profit)["status"] == "filled"
        assert await paper.positions() == []
        held = sum(D(p["quantity"]) for p in h.journal.positions(account="paper"))
        assert held == 0
        assert await h.engine.reconcile_account("paper") == []
        assert h.journal.signal(1)["ticker"] == "NASDAQ:AAPL"  # history as it came

    run(config, now)


def test_a_paper_quote_spelled_otherwise_journals_its_fills_under_the_one_spelling(tmp_path):
    async def test(h: Harness):
        await h.send(buy("MSFT", 2, orderType="limit", limitPrice=99))
        answer = await Actions(h.config, h.engine).paper_quote("paper", "nasdaq:msft", D(98))
        assert answer["ticker"] == "MSFT" and len(answer["filled"]) == 1
        assert [(p["ticker"], D(p["quantity"])) for p in h.journal.positions()] == [("MSFT", 2)]
        assert [f["ticker"] for f in h.journal.fills()] == ["MSFT"]

    run(write_config(tmp_path), test)


def test_tradingviews_crypto_pair_reaches_alpaca_as_its_pair_and_reconciles(tmp_path, monkeypatch):
    """TradingView names the pair "COINBASE:BTCUSD"; Alpaca orders it as "BTC/USD" and lists
    the position as "BTCUSD": all three are one instrument."""
    with FakeAlpaca() as fake:
        fake.add_crypto(
            "BTC/USD", min_order_size="0.0001", min_trade_increment="0.0001", price_increment="1"
        )
        fake.set_price("BTC/USD", 50000)
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        config = fake.config(tmp_path, subscription='time_in_force = "gtc"\nfractional = true\n')

        async def test(h: Harness):
            (signal_id,) = await h.send(
                {"ticker": "COINBASE:BTCUSD", "action": "buy", "quantity": 0.01}
            )
            assert h.deliveries(signal_id)[0][0] == "submitted", h.deliveries(signal_id)
            (order,) = h.journal.orders(signal_id=signal_id)
            assert order["ticker"] == "BTC/USD"
            assert fake.order(order["client_order_id"]).symbol == "BTC/USD"
            await h.engine.drain()
            assert h.journal.position("alpaca", "BTC/USD")[0] == D("0.01")
            assert await h.engine.reconcile_account("alpaca") == []

        run(config, test)


class EarlierEmulated(Harness):
    """`Earlier`, on a paper account without native brackets (legs journaled as children)."""

    def new_engine(self) -> Engine:
        paper = VerbatimPaper(
            "paper", self.journal, cash=D(100000), clock=self.clock, native_brackets=False
        )
        return Engine(self.config, self.journal, {"paper": paper}, self.clock)


def test_flatten_closes_an_instrument_once_whatever_spellings_the_journal_holds(tmp_path):
    """Bracket legs journaled under `NASDAQ:AAPL` by an earlier version, the broker's `AAPL`:
    one instrument, one close (two closes, each for the whole position, sell it twice)."""
    config = write_config(tmp_path, account="native_brackets = false\n")

    async def earlier(h: Harness):
        await h.send(
            buy("NASDAQ:AAPL", 10, takeProfit={"limitPrice": 120}, stopLoss={"stopPrice": 90})
        )
        assert h.position("NASDAQ:AAPL") == 10

    run(config, earlier, EarlierEmulated)

    async def now(h: Harness):
        assert [r["ticker"] for r in await h.engine.flatten()] == ["AAPL"]
        paper = h.engine.brokers["paper"]
        assert [p.quantity for p in await paper.positions() if p.quantity] == []
        assert h.position("AAPL") + h.position("NASDAQ:AAPL") == 0

    run(config, now)
