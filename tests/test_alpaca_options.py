"""Options at Alpaca (SPEC §15): the chain through alpaca-py's option contracts endpoint, paged,
and orders, fills and positions of contracts under their OCC symbols, with the real alpaca-py
against the fake Alpaca (tests/fakes/alpaca.py). The adapter's clock says 2026-11-20."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import requests
from alpaca.trading.models import OptionContractsResponse
from pydantic import TypeAdapter

from tests.fakes.alpaca import KEY, SECRET, FakeAlpaca
from tests.test_alpaca import make_broker, order, run
from tests.test_engine import Harness
from tests.test_engine import run as run_engine
from tradepipe.brokers.alpaca.broker import CAPABILITIES, AlpacaBroker
from tradepipe.brokers.alpaca.options import CHAIN_PAGE, chain_request, to_option_contract
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import OrderRole, OrderStatus, OrderType, Position, Side, TimeInForce
from tradepipe.core.options import OptionContract, OptionRight
from tradepipe.engine import Engine
from tradepipe.errors import OrderRejected

D = Decimal
CALL = "AAPL261218C00200000"


@pytest.fixture
def fake():
    with FakeAlpaca() as running:
        running.set_price("AAPL", 201)
        yield running


def contract_json(**fields) -> dict:
    raw = {
        "id": "6e58f870-fe73-4583-81e4-b9a37892c36f",
        "symbol": CALL,
        "name": "AAPL Dec 18 2026 200 Call",
        "status": "active",
        "tradable": True,
        "expiration_date": "2026-12-18",
        "root_symbol": "AAPL",
        "underlying_symbol": "AAPL",
        "underlying_asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "type": "call",
        "style": "american",
        "strike_price": "200",
        "size": "100",
    }
    return raw | fields


def test_alpaca_lists_chains_and_no_futures():
    assert callable(AlpacaBroker.option_chain)
    assert not hasattr(AlpacaBroker, "futures_contracts")
    assert not CAPABILITIES.continuous_futures  # Alpaca has no futures


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, OptionContract(CALL, "AAPL", OptionRight.CALL, date(2026, 12, 18), D(200), D(100))),
        (
            {"symbol": "AAPL261218P00202500", "type": "put", "strike_price": 202.5},
            OptionContract(
                "AAPL261218P00202500", "AAPL", OptionRight.PUT, date(2026, 12, 18), D("202.5")
            ),
        ),
        # An adjusted contract (after a split or a merger) delivers another number of shares.
        (
            {"symbol": "AAPL1261218C00200000", "root_symbol": "AAPL1", "size": "150"},
            OptionContract(
                "AAPL1261218C00200000",
                "AAPL",
                OptionRight.CALL,
                date(2026, 12, 18),
                D(200),
                D(150),
            ),
        ),
        ({"status": "inactive"}, None),
        ({"tradable": False}, None),
        ({"type": "straddle"}, None),
        ({"strike_price": None}, None),
        ({"expiration_date": "soon"}, None),
    ],
)
def test_alpaca_contract_json_becomes_an_option_contract(fields, expected):
    raw = contract_json(**fields)
    assert to_option_contract(raw) == expected
    if expected is not None:  # the rows we read are what alpaca-py's own model reads too
        TypeAdapter(OptionContractsResponse).validate_python({"option_contracts": [raw]})


def test_the_chain_request_asks_for_active_contracts_from_today_at_the_page_maximum():
    fields = chain_request("AAPL", date(2026, 11, 20), "tok").to_request_fields()
    assert fields == {
        "underlying_symbols": ["AAPL"],
        "status": "active",
        "expiration_date_gte": "2026-11-20",
        "limit": CHAIN_PAGE,
        "page_token": "tok",
    }


def test_the_chain_follows_next_page_token_to_the_last_page(fake):
    fake.max_option_page = 5  # Alpaca caps `limit`: the chain comes in pages
    fake.list_options("AAPL", ["2026-11-13", "2026-12-18", "2027-01-15"], ["195", "200", "205"])
    fake.list_options("MSFT", ["2026-12-18"], ["400"])
    inactive = fake.list_options(
        "AAPL", ["2027-02-19"], ["210"], inactive=frozenset({"AAPL270219C00210000"})
    )

    async def test(broker, heard):
        chain = await broker.option_chain("NASDAQ:AAPL")
        # 2 expirations from today × 3 strikes × call/put, and the active put of 2027-02-19.
        assert len(chain) == 2 * 3 * 2 + 1
        assert chain[0] == OptionContract(
            "AAPL261218C00195000", "AAPL", OptionRight.CALL, date(2026, 12, 18), D(195), D(100)
        )
        assert {c.underlying for c in chain} == {"AAPL"}
        assert inactive[0] not in {c.symbol for c in chain}
        pages = fake.sent("GET", "/v2/options/contracts")
        assert len(pages) == 3  # 13 active contracts, 5 a page
        assert "page_token" not in pages[0].query
        assert [bool(p.query.get("page_token")) for p in pages[1:]] == [True, True]
        assert pages[0].query["underlying_symbols"] == "AAPL"
        assert pages[0].query["expiration_date_gte"] == "2026-11-20"
        # The fake answers in shapes alpaca-py's own models take.
        answer = fake._option_contracts({"underlying_symbols": "AAPL"})
        TypeAdapter(OptionContractsResponse).validate_python(answer)
        # What each contract is worth is known without asking again.
        rules = await broker.instrument("AAPL261218P00205000")
        assert (rules.kind, rules.multiplier, rules.lot_size) == (
            InstrumentKind.OPTION,
            D(100),
            D(1),
        )
        assert fake.sent("GET", "/v2/options/contracts/AAPL261218P00205000") == []

    run(fake, test)


def test_an_underlying_without_contracts_is_refused(fake):
    fake.list_options("AAPL", ["2026-01-16"], ["200"])  # all expired

    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="AAPL has no tradable option contracts"):
            await broker.option_chain("AAPL")

    run(fake, test)


def test_an_option_order_fills_and_the_position_is_under_the_occ_symbol(fake):
    fake.list_options("AAPL", ["2026-12-18"], ["200"])
    fake.set_price(CALL, "3.10")

    async def test(broker, heard):
        rules = await broker.instrument(CALL)  # asked of Alpaca once: its size
        assert rules.multiplier == D(100)
        state = await broker.submit(order("c-call", ticker=CALL, quantity=D(2)))
        assert state.ticker == CALL
        filled = await heard.wait_for(
            lambda s: s.client_order_id == "c-call" and s.status is OrderStatus.FILLED
        )
        assert [(f.ticker, f.quantity, f.price) for f in filled.fills] == [(CALL, D(2), D("3.1"))]
        sent = fake.sent()[-1].body
        assert (sent["symbol"], sent["qty"], sent["type"]) == (CALL, 2.0, "market")
        assert await broker.positions() == [Position(CALL, D(2), D("3.1"))]
        assert (await broker.position(CALL)).quantity == 2
        account = await broker.account()
        assert account.cash == D(100_000) - D(620)  # 2 contracts × 3.10 × 100 shares
        await broker.submit(order("c-close", ticker=CALL, side=Side.SELL, quantity=D(2)))
        await heard.wait_for(
            lambda s: s.client_order_id == "c-close" and s.status is OrderStatus.FILLED
        )
        assert await broker.positions() == []

    run(fake, test)


def test_a_gtc_limit_option_order_rests_as_alpaca_takes_it(fake):
    fake.list_options("AAPL", ["2026-12-18"], ["200"])

    async def test(broker, heard):
        state = await broker.submit(
            order(
                "c-lim",
                ticker=CALL,
                quantity=D(1),
                order_type=OrderType.LIMIT,
                limit_price=D("2.55"),
                time_in_force=TimeInForce.GTC,
            )
        )
        assert state.status is OrderStatus.ACCEPTED
        sent = fake.sent()[-1].body
        assert (sent["time_in_force"], sent["limit_price"]) == ("gtc", 2.55)

    run(fake, test)


def test_an_option_order_alpaca_refuses_carries_its_words(fake):
    fake.list_options("AAPL", ["2026-12-18"], ["200"])
    fake.set_price(CALL, "400")  # 300 contracts × 400 × 100 shares: far past the cash

    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="insufficient buying power"):
            await broker.submit(order("c-big", ticker=CALL, quantity=D(300)))
        assert fake.order("c-big") is None

    run(fake, test)


def test_what_alpaca_refuses_of_options_is_refused_before_sending(fake):
    fake.list_options("AAPL", ["2026-12-18"], ["200"])

    async def test(broker, heard):
        posts = len(fake.sent())
        with pytest.raises(OrderRejected, match="Alpaca lists no such option contract"):
            await broker.submit(order("c-none", ticker="AAPL261218C00300000", quantity=D(1)))
        with pytest.raises(OrderRejected, match="options trade whole contracts"):
            await broker.submit(order("c-frac", ticker=CALL, quantity=D("1.5")))
        with pytest.raises(OrderRejected, match=r"options take time in force day or gtc"):
            await broker.submit(
                order("c-ioc", ticker=CALL, quantity=D(1), time_in_force=TimeInForce.IOC)
            )
        entry = order(
            "c-br-entry",
            ticker=CALL,
            quantity=D(1),
            order_type=OrderType.LIMIT,
            limit_price=D(3),
        )
        stop = order(
            "c-br-stop",
            ticker=CALL,
            side=Side.SELL,
            quantity=D(1),
            order_type=OrderType.STOP,
            stop_price=D(2),
            role=OrderRole.STOP_LOSS,
        )
        with pytest.raises(OrderRejected, match="no bracket for an option"):
            await broker.submit_bracket(entry, [stop])
        assert len(fake.sent()) == posts  # nothing went out

    run(fake, test)


def test_the_fake_refuses_option_orders_as_alpaca_would(fake):
    """The fake's own rules, for an order that slips past the adapter's checks."""
    fake.list_options("AAPL", ["2026-12-18"], ["200"])
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    base = {"symbol": CALL, "side": "buy", "type": "limit", "limit_price": 2.5}
    cases = [
        ({"qty": 1.5, "time_in_force": "day"}, "qty must be integer for options"),
        ({"qty": 1, "time_in_force": "ioc"}, "time_in_force ioc is not supported for options"),
        ({"qty": 1, "time_in_force": "day", "limit_price": 2.555}, "2 decimal places"),
        ({"qty": 1, "time_in_force": "day", "symbol": "AAPL261218C00300000"}, "not tradable"),
    ]
    for fields, words in cases:
        answer = requests.post(f"{fake.url}/v2/orders", json=base | fields, headers=headers)
        assert answer.status_code == 422 and words in answer.json()["message"], answer.text


# -- through the engine ------------------------------------------------------------------------


def test_an_option_signal_through_the_engine_orders_the_occ_symbol_at_alpaca(fake, tmp_path):
    """A signal with option fields, delivered by the engine to the real adapter: the contract
    is chosen from Alpaca's chain around AAPL's quote, and the order Alpaca receives is for the
    OCC symbol, the signal's quantity in contracts; a reversal closes it and buys the put."""
    fake.list_options("AAPL", ["2026-11-27", "2026-12-18"], ["195", "200", "205"])
    put = "AAPL261218P00195000"
    fake.set_price(CALL, "3.10")
    fake.set_price(put, "2.40")

    class AtAlpaca(Harness):
        def new_engine(self) -> Engine:
            broker = make_broker(fake)
            return Engine(self.config, self.journal, {"alpaca": broker}, self.clock)

    def signal(action: str, option_type: str) -> dict:
        return {
            "ticker": "AAPL",
            "action": action,
            "optionType": option_type,
            "expiration": "2026-12-18",
            "strikesAway": 0 if option_type == "call" else 1,
            "quantity": 2,
        }

    async def test(h: Harness):
        posts = len(fake.sent())
        (buy,) = await h.send(signal("buy", "call"))
        assert h.deliveries(buy) == [
            ("submitted", f"enter long 2 (buy 2 {CALL} ×100) (buy a call)")
        ]
        (sent,) = [r.body for r in fake.sent()[posts:]]
        assert (sent["symbol"], sent["qty"], sent["side"], sent["type"]) == (
            CALL,
            2.0,
            "buy",
            "market",
        )
        (journaled,) = h.journal.orders(signal_id=buy)
        assert (journaled["ticker"], D(journaled["quantity"])) == (CALL, 2)
        assert fake.order(journaled["client_order_id"]) is not None  # under our id
        assert fake.position(CALL) == 2
        (sell,) = await h.send(signal("sell", "both"))  # close the call, then buy a put
        assert h.deliveries(sell)[0][0] == "submitted"
        assert [(r.body["symbol"], r.body["side"], r.body["qty"]) for r in fake.sent()[-2:]] == [
            (CALL, "sell", 2.0),
            (put, "buy", 2.0),
        ]
        assert (fake.position(CALL), fake.position(put)) == (0, 2)

    run_engine(fake.config(tmp_path), test, AtAlpaca)
