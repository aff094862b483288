"""Option chains, option orders and listed futures at IB (SPEC §15), through the real
`ib_async.IB` against the fake TWS (tests/fakes/tws.py), and the pure translations beside them.
The adapter's clock says 2026-11-20 (tests.helpers.FixedClock)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import ib_async
import pytest

from tests.fakes.tws import FakeTws
from tests.test_ibkr import last_heard, order, run, until
from tradepipe.brokers.ibkr.broker import IbkrBroker
from tradepipe.brokers.ibkr.chains import chain_contracts, futures_probe, listed_future
from tradepipe.brokers.ibkr.translation import parse_ticker, ticker_of, to_contract
from tradepipe.core.continuous import ListedFuture, front_contract
from tradepipe.core.model import OrderType, Position, Side
from tradepipe.core.options import OptionContract, OptionRight
from tradepipe.errors import OrderRejected

D = Decimal


@pytest.fixture
def fake():
    with FakeTws() as tws:
        yield tws


def test_ib_lists_chains_and_futures():
    for method in ("option_chain", "futures_contracts"):
        assert callable(getattr(IbkrBroker, method))


# -- pure translations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occ", "fields", "back"),
    [
        ("AAPL261218C00200000", ("AAPL", "20261218", 200.0, "C"), "AAPL 261218C00200000"),
        ("AAPL 261218P00202500", ("AAPL", "20261218", 202.5, "P"), "AAPL 261218P00202500"),
        ("OPRA:SPY 270115C00600000", ("SPY", "20270115", 600.0, "C"), "SPY 270115C00600000"),
        ("F 261218P00012500", ("F", "20261218", 12.5, "P"), "F 261218P00012500"),
    ],
)
def test_occ_symbols_become_ib_option_fields_and_come_back(occ, fields, back):
    contract = to_contract(parse_ticker(occ))
    assert isinstance(contract, ib_async.Option)
    got = (
        contract.symbol,
        contract.lastTradeDateOrContractMonth,
        contract.strike,
        contract.right,
    )
    assert got == fields
    assert (contract.exchange, contract.multiplier, contract.currency) == ("SMART", "100", "USD")
    # What IB reports the contract as (positions, executions) reads back as IB's OCC spelling.
    reported = ib_async.Option(*fields, "SMART", multiplier="100", currency="USD")
    reported.secType = "OPT"
    assert ticker_of(reported) == back


def _params(exchange: str, trading_class: str, expirations, strikes, multiplier="100"):
    return ib_async.OptionChain(exchange, 265598, trading_class, multiplier, expirations, strikes)


def test_chain_is_smart_standard_class_cross_product_from_today_on():
    params = [
        _params("CBOE", "AAPL", ["20261218"], [200.0]),
        _params("SMART", "AAPL", ["20261113", "20261218", "20270115"], [205.0, 200.0, 202.5]),
        _params("SMART", "AAPL2", ["20261218"], [1.0]),  # an adjusted class (after a split)
    ]
    chain = chain_contracts("AAPL", params, date(2026, 11, 20))
    assert len(chain) == 2 * 3 * 2  # two expirations from today × three strikes × call/put
    assert chain[0] == OptionContract(
        "AAPL 261218C00200000", "AAPL", OptionRight.CALL, date(2026, 12, 18), D(200), D(100)
    )
    assert {c.strike for c in chain} == {D(200), D("202.5"), D(205)}
    assert {c.expiration for c in chain} == {date(2026, 12, 18), date(2027, 1, 15)}


def test_chain_without_a_smart_standard_class_is_refused_with_what_ib_offers():
    with pytest.raises(OrderRejected, match=r"IB lists CBOE/SPXW"):
        chain_contracts("SPX", [_params("CBOE", "SPXW", ["20261218"], [6000.0])], date(2026, 1, 1))
    with pytest.raises(OrderRejected, match="IB lists none"):
        chain_contracts("ZZZZ", [], date(2026, 1, 1))


@pytest.mark.parametrize(
    ("root", "exchange"),
    [("ES", "CME"), ("MNQ", "CME"), ("YM", "CBOT"), ("CL", "NYMEX"), ("MGC", "COMEX"),
     ("NYMEX:QM", "NYMEX"), ("ZB", "")],
)  # fmt: skip
def test_futures_probe_names_the_roots_exchange(root, exchange):
    probe = futures_probe(root)
    assert (probe.secType, probe.symbol, probe.exchange, probe.lastTradeDateOrContractMonth) == (
        "FUT",
        root.rpartition(":")[2],
        exchange,
        "",
    )


@pytest.mark.parametrize(
    ("symbol", "month", "last_trade", "expected"),
    [
        ("ES", "202612", "20261218", ListedFuture("ESZ2026", date(2026, 12, 18))),
        # CL's December contract stops trading in November: the month names it.
        ("CL", "202612", "20261119", ListedFuture("CLZ2026", date(2026, 11, 19))),
        ("ES", "", "202612", None),  # no last trade date: no expiry to roll by
    ],
)
def test_listed_future_is_named_by_its_contract_month(symbol, month, last_trade, expected):
    details = ib_async.ContractDetails(
        contract=ib_async.Future(symbol, last_trade, "CME"), contractMonth=month
    )
    assert listed_future(details) == expected


# -- through the socket ------------------------------------------------------------------------


def test_option_chain_lists_smart_contracts_from_secdefoptparams(fake):
    fake.list_options("AAPL", ["20261113", "20261218", "20270115"], ["195", "200", "205"])

    async def test(broker, heard):
        chain = await broker.option_chain("NASDAQ:AAPL")
        assert len(chain) == 2 * 3 * 2  # the expired 2026-11-13 is left out
        assert chain[0].symbol == "AAPL 261218C00195000"
        assert {c.multiplier for c in chain} == {D(100)}
        asked = fake.logged("reqSecDefOptParams")
        assert asked[0]["symbol"] == "AAPL" and asked[0]["secType"] == "STK"
        assert asked[0]["conId"] != "0"  # the underlying's conId, from its contract details

    run(fake, test)


def test_a_stock_without_options_is_refused(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="no options on SMART"):
            await broker.option_chain("MSFT")
        with pytest.raises(OrderRejected, match="no stock"):
            await broker.option_chain("ESZ2026")

    run(fake, test)


def test_option_order_fills_and_the_position_is_under_the_occ_symbol(fake):
    fake.list_options("AAPL", ["20261218"], ["200", "205"])
    fake.set_price("AAPL  261218C00200000", "4.10")

    async def test(broker, heard):
        (contract,) = [
            c
            for c in await broker.option_chain("AAPL")
            if c.strike == 200 and c.right is OptionRight.CALL
        ]
        rules = await broker.instrument(contract.symbol)
        assert (str(rules.kind), rules.multiplier) == ("option", D(100))
        await broker.submit(order("c-call", quantity=2, ticker=contract.symbol))
        await until(lambda: getattr(last_heard(heard, "c-call"), "status", None) == "filled")
        filled = last_heard(heard, "c-call")
        assert filled is not None and filled.ticker == "AAPL 261218C00200000"
        assert [(f.quantity, f.price) for f in filled.fills] == [(D(2), D("4.1"))]
        placed = fake.logged("placeOrder")[-1]
        assert (placed["symbol"], placed["secType"]) == ("AAPL", "OPT")
        detail = [r for r in fake.logged("reqContractDetails") if r["secType"] == "OPT"][-1]
        assert (detail["month"], detail["right"], detail["multiplier"]) == ("20261218", "C", "100")
        assert D(detail["strike"]) == 200
        # IB's position (average cost per contract, ×100) reads back per share.
        assert await broker.positions() == [Position(contract.symbol, D(2), D("4.1"))]
        position = await broker.position("AAPL261218C00200000")  # Alpaca's spelling, too
        assert position.quantity == 2
        await broker.submit(order("c-close", side=Side.SELL, quantity=2, ticker=contract.symbol))
        await until(lambda: getattr(last_heard(heard, "c-close"), "status", None) == "filled")
        assert await broker.positions() == []

    run(fake, test)


def test_an_option_ib_does_not_list_is_refused_with_ibs_words_and_never_sent(fake):
    """reqSecDefOptParams is a cross product: 2027-01-15 has no 205 strike here."""
    fake.list_options(
        "AAPL", ["20261218", "20270115"], ["200", "205"], missing={("20270115", "205")}
    )

    async def test(broker, heard):
        chain = await broker.option_chain("AAPL")
        assert "AAPL 270115C00205000" in {c.symbol for c in chain}  # listed by the params
        with pytest.raises(OrderRejected) as refused:
            await broker.submit(order("c-nope", quantity=1, ticker="AAPL 270115C00205000"))
        assert "AAPL 270115C00205000" in str(refused.value)
        assert "IB error 200: No security definition has been found" in str(refused.value)
        assert fake.logged("placeOrder") == []
        with pytest.raises(OrderRejected, match="error 200"):
            await broker.instrument("AAPL 270115P00205000")

    run(fake, test)


def test_an_option_limit_order_rejected_by_ib_carries_its_words(fake):
    fake.list_options("AAPL", ["20261218"], ["200"])
    fake.reject_next("The price does not conform to the minimum price variation")

    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="minimum price variation"):
            await broker.submit(
                order(
                    "c-bad",
                    quantity=1,
                    ticker="AAPL 261218P00200000",
                    order_type=OrderType.LIMIT,
                    limit_price=D("1.5"),
                )
            )

    run(fake, test)


def test_futures_contracts_of_es_by_expiry_and_the_front_one_trades(fake):
    fake.list_futures(
        "ES",
        "CME",
        [("202703", "20270319"), ("202609", "20260918"), ("202612", "20261218")],
    )
    fake.set_price("ES", 6000)

    async def test(broker, heard):
        listed = await broker.futures_contracts("ES")
        assert listed == [  # the expired September one is left out
            ListedFuture("ESZ2026", date(2026, 12, 18)),
            ListedFuture("ESH2027", date(2027, 3, 19)),
        ]
        asked = fake.logged("reqContractDetails")[-1]
        assert (asked["secType"], asked["exchange"], asked["month"]) == ("FUT", "CME", "")
        mapped = front_contract("ES1!", 1, listed, date(2026, 12, 17))
        assert mapped.contract.symbol == "ESH2027"  # type: ignore[union-attr]  # rolled
        await broker.submit(order("c-es", quantity=1, ticker=mapped.contract.symbol))  # type: ignore[union-attr]
        await until(lambda: getattr(last_heard(heard, "c-es"), "status", None) == "filled")
        assert await broker.positions() == [Position("ESH2027", D(1), D(6000))]
        placed = fake.logged("placeOrder")[-1]
        assert (placed["symbol"], placed["secType"]) == ("ES", "FUT")
        qualified = fake.logged("reqContractDetails")[-1]  # ESH2027 named without its exchange
        assert (qualified["month"], qualified["exchange"]) == ("202703", "CME")

    run(fake, test)


def test_a_root_ib_does_not_list_is_refused(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="lists no contracts of NQ on CME"):
            await broker.futures_contracts("NQ")

    run(fake, test)


# -- through tradepipe serve ---------------------------------------------------------------------


def test_a_call_entry_and_its_exit_through_serve_trade_the_contract_at_ib(fake, tmp_path):
    """An alert on the stock with option fields, as TradersPost takes it: the daemon picks the
    contract from IB's chain, buys it, and the exit sells the contract it holds."""
    from datetime import timedelta

    from tests.helpers import Daemon, deliver, free_port, tradepipe_json, write_config
    from tests.test_ibkr_e2e import IB_ACCOUNT

    expiry = date.today() + timedelta(days=30)  # the daemon's clock is the real one
    fake.set_price("AAPL", 200)
    fake.list_options("AAPL", [expiry.strftime("%Y%m%d")], ["195", "200", "205"])
    occ = f"AAPL {expiry:%y%m%d}C00200000"
    fake.set_price(f"AAPL  {expiry:%y%m%d}C00200000", "4.10")  # IB's local symbol: padded
    config = write_config(
        tmp_path, IB_ACCOUNT.format(port=fake.port), subscription="enabled = false\n"
    )
    entry = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": 2,
        "signalPrice": 200,
        "optionType": "call",
        "expiration": expiry.isoformat(),
        "strikePrice": 200,
    }
    with Daemon(config, free_port()):
        bought = deliver(config, entry)
        assert bought["status"] == "submitted", bought
        assert [(p["ticker"], p["quantity"]) for p in tradepipe_json(config, "positions")] == [
            (occ, 2)
        ]
        # The alert template carries the option fields on every alert, the exit's too.
        exit_ = {k: v for k, v in entry.items() if k != "quantity"} | {"action": "exit"}
        closed = deliver(config, exit_)
        assert closed["status"] == "submitted", closed
        assert tradepipe_json(config, "positions") == []
        orders = tradepipe_json(config, "orders")
    placed = fake.logged("placeOrder")
    assert [(p["symbol"], p["secType"], p["action"], D(p["totalQuantity"])) for p in placed] == [
        ("AAPL", "OPT", "BUY", 2),
        ("AAPL", "OPT", "SELL", 2),
    ]
    assert [(o["ticker"], o["side"], o["status"]) for o in orders] == [
        (occ, "sell", "filled"),
        (occ, "buy", "filled"),
    ]
