"""The Interactive Brokers adapter through the real `ib_async.IB`, against a fake TWS that speaks
the socket protocol on a loopback port (tests/fakes/tws.py)."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import ib_async
import pytest
from ib_async.client import Client

from tests.fakes.tws import SERVER_VERSION, FakeTws
from tests.helpers import FixedClock, free_port, write_config
from tests.test_engine import Harness as EngineHarness
from tests.test_engine import run as run_engine
from tradepipe.brokers.ibkr import orders as ibkr_orders
from tradepipe.brokers.ibkr import translation as ibkr_translation
from tradepipe.brokers.ibkr.broker import IbkrBroker
from tradepipe.brokers.ibkr.translation import execution_revision, parse_ticker
from tradepipe.core.model import (
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tradepipe.daemon.serve import make_brokers
from tradepipe.engine import Engine
from tradepipe.errors import BrokerUnavailable, OrderRejected

D = Decimal


@pytest.fixture
def fake():
    with FakeTws() as tws:
        yield tws


def make(
    fake: FakeTws, port: int | None = None, client_id: int = 7
) -> tuple[IbkrBroker, list[OrderState]]:
    broker = IbkrBroker(
        "ib",
        host="127.0.0.1",
        port=port or fake.port,
        client_id=client_id,
        account=None,
        timeout=2.0,
        clock=FixedClock(),
    )
    heard: list[OrderState] = []
    broker.listen(heard.append)
    return broker, heard


def run(fake: FakeTws, test: Callable) -> None:
    async def main():
        broker, heard = make(fake)
        await broker.connect()
        try:
            await test(broker, heard)
        finally:
            await broker.close()

    asyncio.run(main())


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def order(cid: str, side: Side = Side.BUY, quantity: int = 5, **fields) -> OrderRequest:
    return OrderRequest(cid, "ib", fields.pop("ticker", "AAPL"), side, D(quantity), **fields)


def last_heard(heard: list[OrderState], cid: str) -> OrderState | None:
    return next((s for s in reversed(heard) if s.client_order_id == cid), None)


# -- the wire ------------------------------------------------------------------------------


def test_fake_server_version_is_one_ib_async_speaks():
    """Canary: the fake's message layouts are those of ib_async 2.1.0 at version 176."""
    assert (Client.MinClientVersion, Client.MaxClientVersion) == (157, 178)
    assert Client.MinClientVersion <= SERVER_VERSION <= Client.MaxClientVersion


def test_connect_syncs_positions_and_account(fake):
    fake.add_position("MSFT", D(3), D("400.5"))

    async def test(broker, heard):
        assert await broker.positions() == [Position("MSFT", D(3), D("400.5"))]
        assert await broker.position("NASDAQ:MSFT") == Position("NASDAQ:MSFT", D(3), D("400.5"))
        assert (await broker.position("AAPL")).quantity == 0
        account = await broker.account()
        assert (account.equity, account.cash) == (D("101201.5"), D(100000))
        startup = [kind for kind, _ in fake.requests]
        for kind in ("startApi", "reqPositions", "reqOpenOrders", "reqAccountUpdates"):
            assert kind in startup
        assert "reqExecutions" in startup

    run(fake, test)


def test_unreachable_gateway_is_unavailable_naming_the_daily_restart(fake):
    async def main():
        broker, _ = make(fake, port=free_port())
        with pytest.raises(BrokerUnavailable, match="daily restart"):
            await broker.connect()
        with pytest.raises(BrokerUnavailable, match="not connected"):
            await broker.positions()

    asyncio.run(main())


# -- orders --------------------------------------------------------------------------------


def test_market_order_fills_with_our_order_ref_and_ibs_execution_id_without_revision(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        state = await broker.submit(order("c-mkt"))
        await until(lambda: (last_heard(heard, "c-mkt") or state).status is OrderStatus.FILLED)
        (placed,) = fake.logged("placeOrder")
        assert (placed["orderRef"], placed["orderType"], placed["tif"]) == ("c-mkt", "MKT", "DAY")
        filled = await broker.get_order("c-mkt")
        assert filled.status is OrderStatus.FILLED
        assert (filled.filled_quantity, filled.average_fill_price) == (D(5), D(100))
        (fill,) = filled.fills
        assert fill.fill_id == fake.executions[0].exec_id.rpartition(".")[0]
        assert (fill.ticker, fill.side, fill.quantity, fill.price) == ("AAPL", Side.BUY, 5, 100)
        assert await broker.position("AAPL") == Position("AAPL", D(5), D(100))

    run(fake, test)


def test_an_order_is_acknowledged_and_canceled_as_soon_as_ib_answers_not_at_the_deadline(fake):
    """`Session.changed` wakes on IB's next packet: placing and canceling wait for TWS's answer,
    not for the broker's timeout (2 s here); a wake-up that never comes shows as the deadline."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        loop = asyncio.get_running_loop()
        started = loop.time()
        state = await broker.submit(order("c-quick", order_type=OrderType.LIMIT, limit_price=D(90)))
        placed = loop.time() - started
        assert state.status is OrderStatus.ACCEPTED
        assert placed < 1.0, f"placing took {placed:.2f} s of a 2 s deadline"
        started = loop.time()
        canceled = await broker.cancel("c-quick")
        took = loop.time() - started
        assert canceled is not None and canceled.status is OrderStatus.CANCELED
        assert took < 1.0, f"canceling took {took:.2f} s of a 2 s deadline"

    run(fake, test)


RESTING = [
    (
        "limit",
        dict(order_type=OrderType.LIMIT, limit_price=D("99.5")),
        {"orderType": "LMT", "lmtPrice": "99.5"},
        [D("99")],
        D("99"),
    ),
    (
        "stop",
        dict(order_type=OrderType.STOP, stop_price=D(105)),
        {"orderType": "STP", "auxPrice": "105"},
        [D(106)],
        D(106),
    ),
    (
        "stop-limit",
        dict(order_type=OrderType.STOP_LIMIT, stop_price=D(105), limit_price=D("105.5")),
        {"orderType": "STP LMT", "auxPrice": "105", "lmtPrice": "105.5"},
        [D(105)],
        D(105),
    ),
    (
        "trailing-amount",
        dict(order_type=OrderType.TRAILING_STOP, trail_amount=D(2), side=Side.SELL),
        {"orderType": "TRAIL", "auxPrice": "2"},
        [D(104), D(102)],
        D(102),
    ),
    (
        "trailing-percent",
        dict(order_type=OrderType.TRAILING_STOP, trail_percent=D(10), side=Side.SELL),
        {"orderType": "TRAIL", "trailingPercent": "10"},
        [D(110), D(99)],
        D(99),
    ),
]


@pytest.mark.parametrize(
    ("fields", "sent", "prices", "fill_price"),
    [case[1:] for case in RESTING],
    ids=[case[0] for case in RESTING],
)
def test_resting_order_types_rest_then_fill_when_the_price_crosses(
    fake, fields, sent, prices, fill_price
):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        state = await broker.submit(order("c-rest", **fields))
        assert state.status is OrderStatus.ACCEPTED
        (placed,) = fake.logged("placeOrder")
        assert {key: placed[key] for key in sent} == sent
        (working,) = await broker.open_orders("AAPL")
        assert working.client_order_id == "c-rest"
        for price in prices:
            fake.set_price("AAPL", price)
        await until(lambda: getattr(last_heard(heard, "c-rest"), "status", None) == "filled")
        heard_state = last_heard(heard, "c-rest")
        assert heard_state.ticker == "AAPL"
        assert heard_state.fills[0].price == fill_price
        assert await broker.open_orders() == []

    run(fake, test)


def test_time_in_force_is_mapped_and_close_becomes_market_on_close(fake):
    async def test(broker, heard):
        await broker.submit(
            order(
                "c-gtc",
                order_type=OrderType.LIMIT,
                limit_price=D(90),
                time_in_force=TimeInForce.GTC,
            )
        )
        await broker.submit(order("c-cls", time_in_force=TimeInForce.CLS))
        sent = [(p["orderRef"], p["orderType"], p["tif"]) for p in fake.logged("placeOrder")]
        assert sent == [("c-gtc", "LMT", "GTC"), ("c-cls", "MOC", "DAY")]
        with pytest.raises(OrderRejected, match="cls works with market or limit"):
            await broker.submit(
                order(
                    "c-cls-stop",
                    order_type=OrderType.STOP,
                    stop_price=D(1),
                    time_in_force=TimeInForce.CLS,
                )
            )
        fake.set_price("AAPL", 100)
        await broker.submit(
            order(
                "c-ioc",
                order_type=OrderType.LIMIT,
                limit_price=D(90),
                time_in_force=TimeInForce.IOC,
            )
        )
        await until(lambda: getattr(last_heard(heard, "c-ioc"), "status", None) == "canceled")

    run(fake, test)


def test_fractional_quantity_is_refused_before_sending(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected, match=r"quantity 0\.5 of AAPL must be a positive whole"):
            await broker.submit(OrderRequest("c-frac", "ib", "AAPL", Side.BUY, D("0.5")))
        assert fake.logged("placeOrder") == []

    run(fake, test)


def test_duplicate_client_id_is_settled_by_lookup_also_after_a_reconnect(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        first = await broker.submit(order("c-dup"))
        again = await broker.submit(order("c-dup"))
        assert again.client_order_id == "c-dup"
        assert len(fake.logged("placeOrder")) == 1
        fake.drop()  # ib_async forgets every order and fill
        await until(lambda: not broker._ib.isConnected())
        await broker.connect()
        settled = await broker.submit(order("c-dup"))
        assert settled.status is OrderStatus.FILLED
        assert len(fake.logged("placeOrder")) == 1
        assert first.broker_order_id in (None, settled.broker_order_id)
        # A new process (nothing in memory): found among completed orders / executions.
        other, _ = make(fake)
        await broker.close()
        await other.connect()
        try:
            found = await other.submit(order("c-dup"))
            assert (found.status, found.filled_quantity) == (OrderStatus.FILLED, 5)
            assert len(fake.logged("placeOrder")) == 1
            assert await other.get_order("c-never-sent") is None
        finally:
            await other.close()

    run(fake, test)


def test_a_commission_report_ib_sends_again_to_a_new_process_is_told_with_its_order(fake):
    """The process stopped between an execution and its commission report. A new one
    connects: IB replays the day's executions with their commission reports, and the adapter
    tells the order's state with the fill's fee (ib_async alone tells nothing of an order done
    before the connection)."""
    fake.set_price("AAPL", 100)
    fake.commission_delay = 0.3

    async def test(broker, heard):
        await broker.submit(order("c-late"))
        await until(lambda: getattr(last_heard(heard, "c-late"), "status", None) == "filled")
        assert last_heard(heard, "c-late").fills[0].fee is None
        await broker.close()  # before the report
        await until(lambda: fake.executions[0].commission_known)
        other, told = make(fake)
        await other.connect()
        try:
            await until(lambda: last_heard(told, "c-late") is not None)
            state = last_heard(told, "c-late")
            assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, 5)
            assert (state.fills[0].fee, state.fills[0].fee_currency) == (1, "USD")
        finally:
            await other.close()

    run(fake, test)


def test_an_order_open_under_another_client_id_is_found_and_never_placed_twice(fake):
    """reqOpenOrders lists only this client id's orders: one that an earlier session placed
    under another client id (the config changed, another daemon) is found with
    reqAllOpenOrders. Its copy in memory is not kept up to date by IB (only its own client
    hears of it), so every lookup asks again; only its own client may cancel it, and it is
    listed among the open orders (it works at the account)."""
    fake.set_price("AAPL", 100)
    resting = dict(order_type=OrderType.LIMIT, limit_price=D(90))

    async def test(broker, heard):
        earlier, _ = make(fake, client_id=9)
        await earlier.connect()
        await earlier.submit(order("c-elsewhere", **resting))
        await earlier.close()
        found = await broker.submit(order("c-elsewhere", **resting))
        assert (found.status, found.quantity, found.limit_price) == (OrderStatus.ACCEPTED, 5, 90)
        assert len(fake.logged("placeOrder")) == 1
        assert fake.logged("reqAllOpenOrders")
        with pytest.raises(OrderRejected, match="placed by API client id 9"):
            await broker.cancel("c-elsewhere")
        assert fake.logged("cancelOrder") == []
        (listed,) = await broker.open_orders()
        assert (listed.client_order_id, listed.status) == ("c-elsewhere", OrderStatus.ACCEPTED)
        fake.fill_part("c-elsewhere", 2, 90)
        state = await broker.get_order("c-elsewhere")
        assert (state.status, state.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 2)
        fake.set_price("AAPL", 89)
        state = await broker.get_order("c-elsewhere")
        assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, 5)
        assert [f.quantity for f in state.fills] == [2, 3]
        assert len(fake.logged("placeOrder")) == 1

    run(fake, test)


def test_open_orders_lists_every_client_ids_orders_and_those_placed_by_hand(fake):
    """Reconciliation sees every working order at the account: one an earlier session placed
    under client id 9, and one typed into TWS by hand (no orderRef: listed by IB's permId, the
    same id at every call, and refused to cancel with the reason)."""
    resting = dict(order_type=OrderType.LIMIT, limit_price=D(90))

    async def test(broker, heard):
        earlier, _ = make(fake, client_id=9)
        await earlier.connect()
        await earlier.submit(order("c-earlier", **resting))
        await earlier.close()
        perm_id = fake.place_manual("AAPL", "SELL", 3, "STP", "80")
        fake.place_manual("MSFT", "BUY", 1, "LMT", "300")
        await broker.submit(order("c-mine", **resting))
        first = await broker.open_orders("AAPL")
        again = await broker.open_orders("NASDAQ:AAPL")
        assert first == again
        by_id = {s.client_order_id: s for s in first}
        assert sorted(by_id) == ["c-earlier", "c-mine", f"ib-{perm_id}"]
        manual = by_id[f"ib-{perm_id}"]
        assert (manual.status, manual.side, manual.quantity) == (OrderStatus.ACCEPTED, "sell", 3)
        assert (manual.order_type, manual.stop_price) == (OrderType.STOP, D(80))
        assert manual.broker_order_id == str(perm_id)
        assert len(await broker.open_orders()) == 4  # MSFT's too
        assert await broker.get_order(f"ib-{perm_id}") == manual
        with pytest.raises(OrderRejected, match=f"ib-{perm_id} was placed in TWS by hand"):
            await broker.cancel(f"ib-{perm_id}")
        with pytest.raises(OrderRejected, match="placed by API client id 9"):
            await broker.cancel("c-earlier")
        assert fake.logged("cancelOrder") == []
        assert all(o.status == "Submitted" for o in fake.orders.values())

    run(fake, test)


def test_asking_ib_for_all_open_orders_leaves_our_own_orders_reported_once(fake):
    """A fresh reqAllOpenOrders replays our own orders' openOrder / orderStatus: ib_async keeps
    its trade, the listener hears nothing new, and a later fill reaches it once."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-own", order_type=OrderType.LIMIT, limit_price=D(95)))
        await until(lambda: last_heard(heard, "c-own") is not None)
        before = [s for s in heard if s.client_order_id == "c-own"]
        trade = next(t for t in broker._ib.trades() if t.order.orderRef == "c-own")
        asked = len(fake.logged("reqAllOpenOrders"))  # the lookup before placing asked once
        for _ in range(3):
            (listed,) = await broker.open_orders()
            assert listed.client_order_id == "c-own"
        assert len(fake.logged("reqAllOpenOrders")) == asked + 3
        assert [s for s in heard if s.client_order_id == "c-own"] == before
        assert [t for t in broker._ib.trades() if t.order.orderRef == "c-own"] == [trade]
        fake.set_price("AAPL", 94)
        await until(lambda: getattr(last_heard(heard, "c-own"), "status", None) == "filled")
        await asyncio.sleep(0.1)
        filled = [s for s in heard if s.client_order_id == "c-own" and s.status == "filled"]
        # Once, and once more when the commission report brings the fill's fee: never a repeat.
        assert 1 <= len(filled) <= 2 and len(set(filled)) == len(filled)
        assert (filled[-1].filled_quantity, len(filled[-1].fills)) == (5, 1)
        assert filled[-1].fills[0].fee == 1
        assert await broker.open_orders() == []

    run(fake, test)


def test_rejection_carries_ibs_own_words(fake):
    fake.reject_next("YOUR ORDER IS NOT ACCEPTED. INSUFFICIENT EQUITY")

    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="INSUFFICIENT EQUITY"):
            await broker.submit(order("c-rej"))
        state = await broker.get_order("c-rej")
        assert state.status is OrderStatus.REJECTED
        assert "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED" in state.message

    run(fake, test)


HELD = (
    "Order Message: BUY 5 AAPL NASDAQ.NMS Warning: your order will not be placed at the"
    " exchange until 2026-11-23 09:30:00 US/Eastern"
)


def held_heard(heard: list[OrderState], cid: str) -> bool:
    """The listener heard IB's words for the order (the fake sends them, then Inactive)."""
    state = last_heard(heard, cid)
    return state is not None and HELD in (state.message or "")


def test_an_inactive_order_is_open_with_ibs_words_and_fills_once_active(fake):
    """IB's Inactive is not final: IB holds the order (outside trading hours, a hold) and may
    make it active again. It is answered open with IB's words, never rejected."""
    fake.set_price("AAPL", 100)
    fake.hold_next(HELD)

    async def test(broker, heard):
        state = await broker.submit(order("c-held", order_type=OrderType.LIMIT, limit_price=D(99)))
        assert not state.status.is_final
        await until(lambda: held_heard(heard, "c-held"))
        state = last_heard(heard, "c-held")
        assert state.status is OrderStatus.ACCEPTED
        assert state.message == f"inactive at IB (not working now; IB may make it active): {HELD}"
        (listed,) = await broker.open_orders("AAPL")
        assert (listed.client_order_id, listed.status) == ("c-held", OrderStatus.ACCEPTED)
        assert await broker.get_order("c-held") == state
        fake.activate("c-held")
        await until(lambda: getattr(last_heard(heard, "c-held"), "message", "x") is None)
        fake.set_price("AAPL", 98)
        await until(lambda: getattr(last_heard(heard, "c-held"), "status", None) == "filled")
        assert len(fake.logged("placeOrder")) == 1

    run(fake, test)


def test_an_inactive_order_can_be_canceled(fake):
    fake.hold_next(HELD)

    async def test(broker, heard):
        await broker.submit(order("c-held", order_type=OrderType.LIMIT, limit_price=D(90)))
        await until(lambda: held_heard(heard, "c-held"))
        state = await broker.cancel("c-held")
        assert state.status is OrderStatus.CANCELED
        assert [o.status for o in fake.orders.values()] == ["Cancelled"]
        assert len(fake.logged("cancelOrder")) == 1

    run(fake, test)


def test_a_bracket_whose_entry_is_inactive_is_answered_open_and_goes_live_later(fake):
    fake.set_price("AAPL", 100)
    fake.hold_next(HELD)

    async def test(broker, heard):
        entry = order("b-entry", order_type=OrderType.LIMIT, limit_price=D(99))
        take = order(
            "b-tp",
            Side.SELL,
            role=OrderRole.TAKE_PROFIT,
            order_type=OrderType.LIMIT,
            limit_price=D(110),
        )
        stop = order(
            "b-sl", Side.SELL, role=OrderRole.STOP_LOSS, order_type=OrderType.STOP, stop_price=D(95)
        )
        states = await broker.submit_bracket(entry, [take, stop])
        assert [s.status for s in states] == [OrderStatus.ACCEPTED] * 3
        await until(lambda: held_heard(heard, "b-entry"))
        assert last_heard(heard, "b-entry").status is OrderStatus.ACCEPTED
        fake.activate("b-entry")
        fake.set_price("AAPL", 98)
        await until(lambda: getattr(last_heard(heard, "b-entry"), "status", None) == "filled")
        await until(lambda: [o.status for o in fake.orders.values()][1:] == ["Submitted"] * 2)

    run(fake, test)


def test_cancel_answers_canceled_and_ib_hears_one_cancel(fake):
    async def test(broker, heard):
        await broker.submit(order("c-can", order_type=OrderType.LIMIT, limit_price=D(90)))
        state = await broker.cancel("c-can")
        assert state.status is OrderStatus.CANCELED
        assert [c["orderId"] for c in fake.logged("cancelOrder")] == [
            fake.order_by_ref("c-can")[0].order_id
        ]
        assert (await broker.cancel("c-can")).status is OrderStatus.CANCELED
        assert len(fake.logged("cancelOrder")) == 1
        assert await broker.cancel("c-unknown") is None

    run(fake, test)


STOP_95 = dict(order_type=OrderType.STOP, stop_price=D(95))
STOP_98 = dict(order_type=OrderType.STOP, stop_price=D(98))


def stop(cid: str, **fields) -> OrderRequest:
    return order(cid, Side.SELL, **fields)


def finals_heard(heard: list[OrderState], cid: str) -> list[OrderState]:
    return [s for s in heard if s.client_order_id == cid and s.status.is_final]


def test_replace_moves_a_working_stop_in_place_once_ib_answers_with_the_new_price(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        old = await broker.submit(stop("c-old", **STOP_95))
        state = await broker.replace("c-old", stop("c-new", **STOP_98))
        assert (state.client_order_id, state.status) == ("c-new", OrderStatus.ACCEPTED)
        assert (state.stop_price, state.quantity, state.side) == (98, 5, Side.SELL)
        assert state.broker_order_id == old.broker_order_id  # one IB order, moved
        (ib_order,) = fake.orders.values()
        assert (ib_order.order_ref, ib_order.aux_price, ib_order.status) == (
            "c-new",
            98,
            "Submitted",
        )
        (modified,) = fake.modifications("c-new")
        assert (modified["auxPrice"], modified["orderRef"], modified["transmit"]) == (
            "98",
            "c-new",
            True,
        )
        replaced = await broker.get_order("c-old")
        assert (replaced.status, replaced.stop_price) == (OrderStatus.CANCELED, 95)
        assert replaced.message.startswith("replaced by c-new: IB moved the order in place")
        assert last_heard(heard, "c-old") == replaced
        assert last_heard(heard, "c-new") == state == await broker.get_order("c-new")
        assert [s.client_order_id for s in await broker.open_orders("AAPL")] == ["c-new"]
        fake.set_price("AAPL", "97.5")  # below the moved stop, above the old one
        await until(lambda: getattr(last_heard(heard, "c-new"), "status", None) == "filled")
        assert (await broker.position("AAPL")).quantity == -5

    run(fake, test)


REFUSALS = [
    (201, "Order rejected - reason:Stop price revision is disallowed after order has triggered"),
    # ib_async counts 110 as a warning: it marks the order ValidationError, not Cancelled.
    (110, "The price does not conform to the minimum price variation for this contract."),
]


@pytest.mark.parametrize(("code", "words"), REFUSALS, ids=["201", "110"])
def test_a_refused_move_raises_ibs_words_and_the_order_stays_where_ib_holds_it(fake, code, words):
    """ib_async marks an order whose modification IB refused Cancelled (or ValidationError),
    while IB keeps it working at the old price: that guess must reach neither the listener
    (the journal would drop a stop that still works) nor any later answer."""
    fake.set_price("AAPL", 100)
    fake.refuse_next_modify(code, words)

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        with pytest.raises(OrderRejected) as refused:
            await broker.replace("c-old", stop("c-new", **STOP_98))
        assert str(refused.value) == (
            f"IB ib: IB refused to move c-old (error {code}: {words});"
            " it stays working as IB holds it: sell 5 AAPL stop 95"
        )
        (ib_order,) = fake.orders.values()
        assert (ib_order.order_ref, ib_order.aux_price, ib_order.status) == (
            "c-old",
            95,
            "Submitted",
        )
        state = await broker.get_order("c-old")
        assert (state.status, state.stop_price, state.message) == (OrderStatus.ACCEPTED, 95, None)
        (listed,) = await broker.open_orders("AAPL")
        assert (listed.client_order_id, listed.stop_price) == ("c-old", 95)
        assert await broker.get_order("c-new") is None
        assert finals_heard(heard, "c-old") == []
        assert last_heard(heard, "c-old").status is OrderStatus.ACCEPTED
        fake.set_price("AAPL", 94)  # the stop IB kept still protects
        await until(lambda: getattr(last_heard(heard, "c-old"), "status", None) == "filled")
        await until(lambda: last_heard(heard, "c-old").fills[0].fee is not None)
        # Filled, and nothing else final; told again when the commission report follows.
        assert {s.status for s in finals_heard(heard, "c-old")} == {OrderStatus.FILLED}
        assert last_heard(heard, "c-old").fills[0].fee == 1

    run(fake, test)


def test_an_order_whose_move_was_refused_is_canceled_not_rejected_later(fake):
    """The refusal stays in ib_async's log of the order: it is not the order's fate."""
    fake.refuse_next_modify()

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        with pytest.raises(OrderRejected, match="Stop price revision is disallowed"):
            await broker.replace("c-old", stop("c-new", **STOP_98))
        state = await broker.cancel("c-old")
        assert (state.status, state.message) == (OrderStatus.CANCELED, None)
        assert [s.status for s in finals_heard(heard, "c-old")] == [OrderStatus.CANCELED]

    run(fake, test)


def test_a_refused_move_whose_truth_could_not_be_read_is_asked_of_ib_until_it_is(fake):
    """IB refused, then did not answer the question of what it holds: the refusal is raised,
    the order stays out of ib_async's (guessed) hands until IB lists it again."""
    fake.refuse_next_modify()

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        fake.ignore_next(16, after=1)  # reqAllOpenOrders: the lookup of c-new is answered
        with pytest.raises(BrokerUnavailable, match="could not be read") as refused:
            await broker.replace("c-old", stop("c-new", **STOP_98))
        assert "Stop price revision is disallowed" in str(refused.value)
        state = await broker.get_order("c-old")  # asks IB, which lists it working again
        assert (state.status, state.stop_price) == (OrderStatus.ACCEPTED, 95)
        assert finals_heard(heard, "c-old") == []
        moved = await broker.replace("c-old", stop("c-new2", **STOP_98))  # settled: movable
        assert (moved.client_order_id, moved.stop_price) == ("c-new2", 98)

    run(fake, test)


def test_an_order_whose_refused_move_is_unsettled_can_still_be_canceled(fake):
    fake.refuse_next_modify()

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        fake.ignore_next(16, after=1)
        with pytest.raises(BrokerUnavailable, match="could not be read"):
            await broker.replace("c-old", stop("c-new", **STOP_98))
        state = await broker.cancel("c-old")  # ib_async holds it for Cancelled: IB is asked
        assert state.status is OrderStatus.CANCELED
        assert [o.status for o in fake.orders.values()] == ["Cancelled"]
        assert len(fake.logged("cancelOrder")) == 1

    run(fake, test)


def test_a_move_sent_again_is_answered_from_ib_and_modifies_once(fake):
    """After a crash the engine sends the same move again (same new client order id): found by
    the new id that IB now holds in orderRef, never modified twice."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        first = await broker.replace("c-old", stop("c-new", **STOP_98))
        again = await broker.replace("c-old", stop("c-new", **STOP_98))
        assert again == first
        await broker.close()
        restarted, _ = make(fake)  # a new process, same client id: nothing in memory
        await restarted.connect()
        try:
            found = await restarted.replace("c-old", stop("c-new", **STOP_98))
            assert (found.client_order_id, found.stop_price) == ("c-new", 98)
        finally:
            await restarted.close()
        assert len(fake.modifications("c-new")) == 1

    run(fake, test)


@pytest.mark.parametrize("applied", [True, False], ids=["ib-moved-it", "ib-did-not"])
def test_an_unanswered_move_is_unavailable_and_later_answered_from_ib(fake, applied):
    fake.set_price("AAPL", 100)
    fake.stall_next_modify(apply=applied)

    async def test(broker, heard):
        await broker.submit(stop("c-old", **STOP_95))
        with pytest.raises(BrokerUnavailable, match="IB may or may not have moved it"):
            await broker.replace("c-old", stop("c-new", **STOP_98))
        assert finals_heard(heard, "c-old") == []
        assert len(fake.modifications("c-new" if applied else "c-old")) == 1
        found = await broker.get_order("c-new")  # what the engine asks before sending again
        old = await broker.get_order("c-old")
        if applied:
            assert (found.status, found.stop_price) == (OrderStatus.ACCEPTED, 98)
            assert old.status is OrderStatus.CANCELED and "replaced by c-new" in old.message
            again = await broker.replace("c-old", stop("c-new", **STOP_98))
            assert again == found
            assert len(fake.modifications("c-new")) == 1
        else:
            assert found is None
            assert (old.status, old.stop_price) == (OrderStatus.ACCEPTED, 95)
            with pytest.raises(OrderRejected, match="c-old to c-new is not settled with IB"):
                await broker.replace("c-old", stop("c-new", **STOP_98))
            assert len(fake.modifications("c-old")) == 1
            canceled = await broker.cancel("c-old")  # an exit still cancels it
            assert canceled.status is OrderStatus.CANCELED
            assert [o.status for o in fake.orders.values()] == ["Cancelled"]

    run(fake, test)


def test_what_ib_cannot_move_is_refused_before_sending(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        earlier, _ = make(fake, client_id=9)
        await earlier.connect()
        await earlier.submit(stop("c-earlier", **STOP_95))
        await earlier.close()
        with pytest.raises(OrderRejected, match="placed by API client id 9"):
            await broker.replace("c-earlier", stop("c-new", **STOP_98))
        await broker.submit(stop("c-part", order_type=OrderType.LIMIT, limit_price=D(110)))
        fake.fill_part("c-part", 2, 110)
        await until(lambda: getattr(last_heard(heard, "c-part"), "filled_quantity", 0) == 2)
        with pytest.raises(OrderRejected, match=r"c-part is partially filled \(2 of 5\)"):
            await broker.replace(
                "c-part", stop("c-new", order_type=OrderType.LIMIT, limit_price=D(105))
            )
        await broker.submit(stop("c-stop", **STOP_95))
        with pytest.raises(OrderRejected, match="keeps its order type and side"):
            await broker.replace(
                "c-stop", stop("c-new", order_type=OrderType.LIMIT, limit_price=D(99))
            )
        with pytest.raises(OrderRejected, match="no order c-never to move"):
            await broker.replace("c-never", stop("c-new", **STOP_98))
        assert [p["orderRef"] for p in fake.logged("placeOrder")] == [
            "c-earlier",
            "c-part",
            "c-stop",
        ]

    run(fake, test)


def test_a_bracket_sent_again_is_answered_from_ib_not_placed_twice(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        entry = order("r-entry", order_type=OrderType.LIMIT, limit_price=D(99))
        take = order(
            "r-tp",
            Side.SELL,
            role=OrderRole.TAKE_PROFIT,
            order_type=OrderType.LIMIT,
            limit_price=D(110),
        )
        stop = order(
            "r-sl", Side.SELL, role=OrderRole.STOP_LOSS, order_type=OrderType.STOP, stop_price=D(95)
        )
        first = await broker.submit_bracket(entry, [take, stop])
        again = await broker.submit_bracket(entry, [take, stop])
        assert [s.client_order_id for s in again] == [s.client_order_id for s in first]
        assert len(fake.logged("placeOrder")) == 3  # the first bracket's three, nothing more

    run(fake, test)


def test_bracket_uses_transmit_semantics_and_one_cancels_other(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        entry = order("b-entry", order_type=OrderType.LIMIT, limit_price=D(99))
        take = order(
            "b-tp",
            Side.SELL,
            role=OrderRole.TAKE_PROFIT,
            order_type=OrderType.LIMIT,
            limit_price=D(110),
        )
        stop = order(
            "b-sl", Side.SELL, role=OrderRole.STOP_LOSS, order_type=OrderType.STOP, stop_price=D(95)
        )
        states = await broker.submit_bracket(entry, [take, stop])
        assert [s.client_order_id for s in states] == ["b-entry", "b-tp", "b-sl"]
        assert [s.status for s in states] == [OrderStatus.ACCEPTED] * 3
        sent = fake.logged("placeOrder")
        assert [p["transmit"] for p in sent] == [False, False, True]
        parent_id = sent[0]["orderId"]
        assert [p["parentId"] for p in sent] == [0, parent_id, parent_id]
        assert sent[1]["ocaGroup"] == sent[2]["ocaGroup"] != ""
        assert [o.status for o in fake.orders.values()] == [
            "Submitted",
            "PreSubmitted",
            "PreSubmitted",
        ]
        fake.set_price("AAPL", 98)  # the entry fills; its children go live
        await until(lambda: [o.status for o in fake.orders.values()][1:] == ["Submitted"] * 2)
        await until(lambda: getattr(last_heard(heard, "b-entry"), "status", None) == "filled")
        fake.set_price("AAPL", 111)  # the take-profit fills; the stop is canceled (OCA)
        await until(lambda: getattr(last_heard(heard, "b-sl"), "status", None) == "canceled")
        assert last_heard(heard, "b-tp").status is OrderStatus.FILLED
        assert (await broker.position("AAPL")).quantity == 0

    run(fake, test)


def test_a_fill_during_a_disconnect_is_recovered_after_reconnecting(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-away", order_type=OrderType.LIMIT, limit_price=D(95)))
        fake.set_down(True)
        fake.drop()
        await until(lambda: not broker._ib.isConnected())
        with pytest.raises(BrokerUnavailable, match="daily restart is around 23:45"):
            await broker.get_order("c-away")
        fake.set_price("AAPL", 94)  # fills while nobody listens
        with pytest.raises(BrokerUnavailable):
            await broker.connect()
        assert last_heard(heard, "c-away").status is OrderStatus.ACCEPTED
        fake.set_down(False)
        await broker.connect()
        recovered = last_heard(heard, "c-away")
        assert recovered.status is OrderStatus.FILLED
        assert [f.fill_id for f in recovered.fills] == [fake.executions[0].exec_id[:-3]]
        assert (await broker.position("AAPL")).quantity == 5

    run(fake, test)


def test_fills_without_their_order_are_filled_only_when_they_cover_its_quantity(fake):
    """After a Gateway restart IB may list an order no more while today's executions still
    carry its fills: they make it filled only when they cover what was sent."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-full"))
        await broker.submit(order("c-part", order_type=OrderType.LIMIT, limit_price=D(99)))
        fake.fill_part("c-part", 3, 99)
        await until(lambda: getattr(last_heard(heard, "c-part"), "filled_quantity", 0) == 3)
        fake.set_down(True)
        fake.drop()
        await until(lambda: not broker._ib.isConnected())
        fake.cancel_by_ib("c-part")  # the rest is canceled while nobody listens
        fake.forget_completed()
        fake.set_down(False)
        await broker.connect()
        for state in (last_heard(heard, "c-part"), await broker.get_order("c-part")):
            assert (state.status, state.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 3)
            assert (state.quantity, len(state.fills)) == (5, 1)
            assert "executions for 3 of 5" in state.message
        full = await broker.get_order("c-full")
        assert (full.status, full.filled_quantity, full.quantity) == (OrderStatus.FILLED, 5, 5)

    run(fake, test)


def test_fills_of_an_order_of_unknown_quantity_are_never_answered_filled(fake):
    """A new process knows nothing of what it sent: fills alone say how much was filled, not
    that the order is done. The lookup still finds the order: nothing is sent again."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-gone"))
        await until(lambda: getattr(last_heard(heard, "c-gone"), "status", None) == "filled")
        fake.forget_completed()
        other, _ = make(fake)
        await broker.close()
        await other.connect()
        try:
            for state in (await other.get_order("c-gone"), await other.submit(order("c-gone"))):
                assert (state.status, state.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 5)
                assert (state.quantity, state.side, len(state.fills)) == (None, Side.BUY, 1)
                assert "its quantity is not known" in state.message
            assert len(fake.logged("placeOrder")) == 1
        finally:
            await other.close()

    run(fake, test)


def test_repeated_status_events_are_reported_once(fake):
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-rep"))
        await until(lambda: getattr(last_heard(heard, "c-rep"), "status", None) == "filled")
        # The commission report (a change: the fill's fee) may be read a moment after the
        # status: only then is every report in.
        await until(lambda: last_heard(heard, "c-rep").fills[0].fee is not None)
        count = len(heard)
        fake.repeat_status(fake.order_by_ref("c-rep")[0].order_id)
        await asyncio.sleep(0.1)
        assert len(heard) == count
        assert len((await broker.get_order("c-rep")).fills) == 1

    run(fake, test)


def test_a_corrected_execution_replaces_the_one_it_corrects(fake):
    """IB corrects an execution with the same execId and the next revision (".01.01" →
    ".01.02"): one fill, the latest revision's, under an id that stays the same when the
    correction arrives and when IB replays both revisions after a reconnect."""
    fake.set_price("AAPL", 100)

    async def test(broker, heard):
        await broker.submit(order("c-fix"))
        await until(lambda: getattr(last_heard(heard, "c-fix"), "status", None) == "filled")
        (execution,) = fake.executions
        assert execution.exec_id.endswith(".01.01")
        stem = execution.exec_id.removesuffix(".01")
        corrected = fake.correct_execution(execution.exec_id, "100.5")
        assert corrected == f"{stem}.02"
        await until(lambda: last_heard(heard, "c-fix").fills[0].price == D("100.5"))
        fake.drop()  # the replay after reconnecting carries both revisions
        await until(lambda: not broker._ib.isConnected())
        await broker.connect()
        for state in (last_heard(heard, "c-fix"), await broker.get_order("c-fix")):
            assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, 5)
            (fill,) = state.fills
            assert (fill.fill_id, fill.quantity, fill.price) == (stem, 5, D("100.5"))

    run(fake, test)


def test_connectivity_errors_make_calls_unavailable_until_restored(fake):
    async def test(broker, heard):
        fake.inject_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        await until(lambda: broker._link_lost is not None)
        with pytest.raises(BrokerUnavailable, match="error 1100"):
            await broker.submit(order("c-lost"))
        assert fake.logged("placeOrder") == []
        fake.inject_error(1101, "Connectivity restored - data lost.")
        await until(lambda: broker._link_lost is None)
        await until(lambda: len(fake.logged("reqOpenOrders")) >= 2)
        assert (await broker.position("AAPL")).quantity == 0

    run(fake, test)


# -- instruments ---------------------------------------------------------------------------


def test_continuous_futures_symbol_is_refused_with_the_syntax_to_use(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected, match=r'"NQ1!" is a continuous.*"NQZ2026"'):
            await broker.submit(order("c-nq", ticker="NQ1!"))
        with pytest.raises(OrderRejected, match="continuous"):
            await broker.position("CME_MINI:NQ1!")
        assert fake.logged("placeOrder") == []

    run(fake, test)


def test_futures_with_a_contract_month_and_options_trade(fake):
    fake.set_price("ES", 6000)

    async def test(broker, heard):
        assert (await broker.instrument("ESZ2026")).tick_size == D("0.25")
        state = await broker.submit(order("c-es", quantity=1, ticker="ESZ2026"))
        await until(lambda: getattr(last_heard(heard, "c-es"), "status", None) == "filled")
        assert state.ticker == "ESZ2026"
        assert await broker.positions() == [Position("ESZ2026", D(1), D(6000))]
        option = await broker.submit(
            order(
                "c-opt",
                quantity=1,
                ticker="AAPL 261218C00200000",
                order_type=OrderType.LIMIT,
                limit_price=D("1.5"),
            )
        )
        assert option.status is OrderStatus.ACCEPTED
        placed = fake.logged("placeOrder")[-1]
        assert (placed["symbol"], placed["secType"]) == ("AAPL", "OPT")

    run(fake, test)


def test_contract_details_say_what_one_unit_is_worth(fake):
    """SPEC §12: IB's contract details carry the multiplier and the tick (the fake TWS answers
    ES 50, NQ 20, options 100 and a stock none, in IB's wire layout)."""

    async def test(broker, heard):
        answers = {}
        for ticker in ("ESZ2026", "CME:NQH2027", "AAPL", "AAPL 261218C00200000"):
            rules = await broker.instrument(ticker)
            answers[ticker] = (str(rules.kind), rules.multiplier, rules.tick_size, rules.lot_size)
        assert answers == {
            "ESZ2026": ("future", D(50), D("0.25"), D(1)),
            "CME:NQH2027": ("future", D(20), D("0.25"), D(1)),
            "AAPL": ("stock", D(1), D("0.01"), D(1)),
            "AAPL 261218C00200000": ("option", D(100), D("0.01"), D(1)),
        }

    run(fake, test)


@pytest.mark.parametrize(
    ("ticker", "kind", "canonical"),
    [
        ("AAPL", "STK", "AAPL"),
        ("NASDAQ:AAPL", "STK", "AAPL"),
        ("ESZ2026", "FUT", "ESZ2026"),
        ("CME:MNQH2027", "FUT", "MNQH2027"),
        ("AAPL 261218C00200000", "OPT", "AAPL 261218C00200000"),
    ],
)
def test_ticker_syntax(ticker, kind, canonical):
    instrument = parse_ticker(ticker)
    assert (instrument.kind, instrument.ticker) == (kind, canonical)


@pytest.mark.parametrize(
    ("exec_id", "execution", "revision"),
    [
        ("0000e0d5.6551e5f1.01.01", "0000e0d5.6551e5f1.01", 1),
        ("0000e0d5.6551e5f1.01.02", "0000e0d5.6551e5f1.01", 2),
        ("00018037.5f5c09b4.02.10", "00018037.5f5c09b4.02", 10),
        ("no-revision", "no-revision", 0),
        ("0001f4e8.65e5c4a1.01.x", "0001f4e8.65e5c4a1.01.x", 0),
    ],
)
def test_execution_ids_read_as_execution_and_revision(exec_id, execution, revision):
    assert execution_revision(exec_id) == (execution, revision)


def test_the_translation_module_does_no_io():
    """ibkr_translation is the pure half of the adapter: no sockets, no loop, no clock."""
    tree = ast.parse(Path(ibkr_translation.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported & {"asyncio", "socket", "time", "os", "logging"} == set()
    assert not any(name.startswith("tradepipe.brokers.ibkr") for name in imported if name)
    calls = {
        n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    assert calls & {"now", "utcnow", "today", "time", "monotonic", "sleep"} == set()


def test_the_orders_module_does_no_io():
    """ibkr_orders (orders, statuses, fills) is pure too: it imports only the translation."""
    tree = ast.parse(Path(ibkr_orders.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported & {"asyncio", "socket", "time", "os", "logging"} == set()
    ours = {name for name in imported if name.startswith("tradepipe.brokers.ibkr")}
    assert ours == {"tradepipe.brokers.ibkr.translation"}
    calls = {
        n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    assert calls & {"now", "utcnow", "today", "time", "monotonic", "sleep"} == set()


# -- the engine ----------------------------------------------------------------------------

IB_ACCOUNT = """
[accounts.ib]
broker = "ibkr"
host = "127.0.0.1"
port = {port}
client_id = 3
timeout = 2

[subscriptions.trend-ib]
strategy = "trend"
account = "ib"
"""


def ib_config(fake: FakeTws, tmp_path: Path) -> Path:
    return write_config(
        tmp_path, IB_ACCOUNT.format(port=fake.port), subscription="enabled = false\n"
    )


def test_engine_sends_a_signal_to_ib_and_journals_the_fill(fake, tmp_path: Path):
    fake.set_price("AAPL", 100)

    async def test(h):
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        (journaled,) = h.journal.orders(signal_id=signal_id)
        (placed,) = fake.logged("placeOrder")
        assert placed["orderRef"] == journaled["client_order_id"]
        await until(lambda: h.journal.order_by_client_id(placed["orderRef"])["status"] == "filled")
        await h.engine.drain()
        assert h.journal.position("ib", "AAPL")[0] == 5

    run_engine(ib_config(fake, tmp_path), test)


def test_engine_journals_a_corrected_execution_once(fake, tmp_path: Path):
    fake.set_price("AAPL", 100)

    async def test(h):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        (placed,) = fake.logged("placeOrder")
        cid = placed["orderRef"]
        await until(lambda: h.journal.order_by_client_id(cid)["status"] == "filled")
        corrected = fake.correct_execution(fake.executions[0].exec_id, "100.5")
        ib = h.engine.brokers["ib"]._ib
        await until(lambda: corrected in {f.execution.execId for f in ib.fills()})
        await asyncio.sleep(0.05)
        await h.engine.drain()
        journaled = h.journal.order_by_client_id(cid)
        assert D(journaled["filled_quantity"]) == 5
        assert [q for _, q, _ in h.journal.order_fills(journaled["id"])] == [5]
        assert h.journal.position("ib", "AAPL")[0] == 5

    run_engine(ib_config(fake, tmp_path), test)


class FastReconnect(EngineHarness):
    def new_engine(self) -> Engine:
        brokers = make_brokers(self.config, self.journal, self.clock)
        return Engine(self.config, self.journal, brokers, self.clock, reconnect_backoff=(0.05, 0.2))


def test_a_dropped_gateway_is_reported_at_once_and_reconnected_with_backoff(fake, tmp_path):
    """IB's nightly restart: ib_async does not reconnect by itself. The engine hears of the
    drop without waiting for a call to fail, reports it, and its reconnection (the daemon runs
    `reconnect_due` every second) comes back once the Gateway answers again."""

    async def test(h):
        engine = h.engine
        assert engine.health()["status"] == "ready"
        fake.set_down(True)
        fake.drop()
        await until(lambda: engine.broker_health.get("ib", {}).get("ok") is False)
        assert "dropped" in engine.broker_health["ib"]["error"]
        await asyncio.sleep(0.1)
        await engine.reconnect_due()  # the Gateway is still restarting: wait longer
        assert engine.broker_health["ib"]["ok"] is False
        fake.set_down(False)
        await asyncio.sleep(0.3)
        await engine.reconnect_due()
        await engine.drain()
        assert engine.health()["status"] == "ready"
        assert engine.brokers["ib"]._ib.isConnected()

    run_engine(ib_config(fake, tmp_path), test, FastReconnect)


IB_BRACKET = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": 5,
    "signalPrice": 100,
    "takeProfit": {"percent": 10},
    "stopLoss": {"amount": 5},
}
BREAKEVEN = {"ticker": "AAPL", "action": "breakeven", "signalPrice": 104}


def ib_legs(h, signal_id: int) -> dict[str, dict]:
    return {o["role"]: o for o in h.journal.orders(signal_id=signal_id)}


def test_engine_breakeven_moves_the_bracket_stop_at_ib_and_it_still_cancels_with_the_tp(
    fake, tmp_path
):
    fake.set_price("AAPL", 100)

    async def test(h):
        (buy,) = await h.send(IB_BRACKET)
        await until(lambda: ib_legs(h, buy)["entry"]["status"] == "filled")
        old_stop = ib_legs(h, buy)["stop_loss"]
        fake.set_price("AAPL", 104)
        (be,) = await h.send(BREAKEVEN)
        assert h.deliveries(be) == [
            (
                "submitted",
                "move the stop of the long 5 from 95 to breakeven 100 (average 100, offset 0)",
            )
        ]
        (moved,) = h.journal.orders(signal_id=be)
        assert (moved["stop_price"], moved["status"], moved["replaces"]) == (
            "100",
            "accepted",
            old_stop["client_order_id"],
        )
        old_stop = h.journal.order_by_client_id(old_stop["client_order_id"])
        assert old_stop["status"] == "canceled"
        assert old_stop["broker_message"].startswith(f"replaced by {moved['client_order_id']}")
        ib_stop, ib_tp = (
            fake.order_by_ref(moved["client_order_id"]),
            fake.order_by_ref(ib_legs(h, buy)["take_profit"]["client_order_id"]),
        )
        assert [(o.aux_price, o.status) for o in ib_stop] == [(100, "Submitted")]
        assert ib_stop[0].oca_group == ib_tp[0].oca_group != ""
        assert len(fake.orders) == 3  # moved in place: no new IB order
        fake.set_price("AAPL", 111)  # the take-profit fills; IB cancels the moved stop (OCA)
        await until(
            lambda: h.journal.order_by_client_id(moved["client_order_id"])["status"] == "canceled"
        )
        await until(lambda: h.journal.position("ib", "AAPL")[0] == 0)

    run_engine(ib_config(fake, tmp_path), test)


def test_engine_breakeven_that_ib_refuses_keeps_the_stop_journaled_where_ib_holds_it(
    fake, tmp_path
):
    fake.set_price("AAPL", 100)

    async def test(h):
        (buy,) = await h.send(IB_BRACKET)
        await until(lambda: ib_legs(h, buy)["entry"]["status"] == "filled")
        fake.set_price("AAPL", 104)
        fake.refuse_next_modify()
        (be,) = await h.send(BREAKEVEN)
        ((status, reason),) = h.deliveries(be)
        assert status == "rejected"
        assert "Stop price revision is disallowed after order has triggered" in reason
        assert "it stays working as IB holds it: sell 5 AAPL stop 95" in reason
        await asyncio.sleep(0.1)  # anything ib_async said meanwhile has reached the journal
        stop_loss = ib_legs(h, buy)["stop_loss"]
        assert (stop_loss["status"], stop_loss["stop_price"]) == ("accepted", "95")
        (refused,) = h.journal.orders(signal_id=be)
        assert refused["status"] == "rejected"
        assert await h.engine.reconcile("ib", "AAPL") == []
        fake.set_price("AAPL", 94)  # the stop IB kept fills
        await until(lambda: ib_legs(h, buy)["stop_loss"]["status"] == "filled")

    run_engine(ib_config(fake, tmp_path), test)


def test_reconciliation_reports_an_order_placed_in_tws_by_hand_under_one_id(fake, tmp_path):
    perm_id = fake.place_manual("AAPL", "SELL", 3, "STP", "80")

    async def test(h):
        for _ in range(2):
            differences = await h.engine.reconcile("ib", "AAPL")
            assert [(d.kind, d.subject, d.broker) for d in differences] == [
                ("foreign-order", f"ib-{perm_id}", "accepted")
            ]
        assert "AAPL" in await h.engine.reconciler.tickers("ib")

    run_engine(ib_config(fake, tmp_path), test)


def test_engine_settles_an_order_ib_forgot_as_filled_from_fills_covering_it(fake, tmp_path):
    """A crash before the answer, a restart after IB stopped listing the completed order: the
    new adapter only finds today's executions (a partial fill of unknown size, to it), but the
    journal knows what was sent. The fills cover it: filled, and nothing is sent again."""
    fake.set_price("AAPL", 100)

    async def test(h):
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        (placed,) = fake.logged("placeOrder")
        cid = placed["orderRef"]
        await until(lambda: h.journal.order_by_client_id(cid)["status"] == "filled")
        fake.forget_completed()
        await h.crash_and_restart(signal_id, orders_submitting=True)
        journaled = h.journal.order_by_client_id(cid)
        assert (journaled["status"], D(journaled["filled_quantity"])) == ("filled", 5)
        assert len(fake.logged("placeOrder")) == 1
        assert h.journal.position("ib", "AAPL")[0] == 5
        assert h.deliveries(signal_id)[0][0] == "submitted"

    run_engine(ib_config(fake, tmp_path), test)


def test_an_order_only_tws_can_cancel_stops_neither_a_signal_nor_a_flatten(fake, tmp_path):
    """An order typed into TWS by hand is listed (reconciliation must see it), but IB lets only
    TWS cancel it. A buy (cancel_open_orders is on by default) still trades, and flatten still
    closes the position: the order is left working and named, never a reason to stop."""
    fake.set_price("AAPL", 100)
    perm_id = fake.place_manual("AAPL", "SELL", 3, "STP", "80")

    async def test(h):
        def held() -> D:
            position = h.journal.position("ib", "AAPL")
            return position[0] if position else D(0)

        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        await until(lambda: held() == 5)
        await h.engine.drain()
        assert h.deliveries(signal_id)[0][0] == "submitted"
        (result,) = await h.engine.flatten("ib", "AAPL")
        (left,) = result["left_working"]
        assert left.startswith(f"ib-{perm_id}: ") and "by hand" in left
        assert (result["closed"]["side"], result["closed"]["quantity"]) == ("sell", "5")
        await until(lambda: held() == 0)
        listed = await h.engine.brokers["ib"].open_orders("AAPL")
        assert [o.client_order_id for o in listed] == [f"ib-{perm_id}"]

    run_engine(ib_config(fake, tmp_path), test)


def test_our_own_orders_that_ib_will_not_cancel_fail_the_signal_instead_of_doubling(fake, tmp_path):
    """The bracket's legs were placed under client id 3; the daemon now runs as client id 4,
    and IB lets only client 3 cancel them. A sell must not reverse the position while the old
    stop still rests: it would fire on the new short (found by a review: short 10 for 5). The
    delivery fails naming the order; a flatten still closes, and names what it left."""
    fake.set_price("AAPL", 100)

    async def test(h):
        (buy,) = await h.send(IB_BRACKET)
        await until(lambda: ib_legs(h, buy)["entry"]["status"] == "filled")
        stop = ib_legs(h, buy)["stop_loss"]["client_order_id"]
        await h.engine.stop()
        h.config.accounts["ib"].client_id = 4
        h.engine = h.new_engine()
        await h.engine.start()
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 100}
        )
        await h.engine.drain()
        ((status, reason),) = h.deliveries(sell)
        assert status == "failed" and "cancelling open orders" in reason and "client id" in reason
        assert len(fake.logged("placeOrder")) == 3  # the bracket only: nothing more was sent
        assert h.journal.position("ib", "AAPL")[0] == 5
        (result,) = await h.engine.flatten("ib", "AAPL")
        assert any(left.startswith(f"{stop}: ") for left in result["left_working"])
        assert (result["closed"]["side"], result["closed"]["quantity"]) == ("sell", "5")

    run_engine(ib_config(fake, tmp_path), test)


class LinkLostWhileLookingUp(IbkrBroker):
    """IB's 1100 (connectivity lost) arrives while `replace` looks the new id up, before
    anything is sent: a fault seam at the one await that matters here."""

    lose_link_at: str | None = None

    async def _lookup(self, client_order_id: str) -> OrderState | None:
        found = await super()._lookup(client_order_id)
        if client_order_id == self.lose_link_at:
            self.lose_link_at = None
            self.fake.inject_error(1100, "Connectivity between IB and TWS has been lost")
            await until(lambda: self._link_lost is not None)
        return found


def test_a_move_the_link_loss_kept_from_being_sent_does_not_block_the_next(fake):
    """A move that never left (the link dropped during its lookups) raised BrokerUnavailable
    but stayed pending: every later move of that stop was refused for the process's life,
    reconnects included (found by a review). Nothing was sent, so nothing is pending."""
    fake.set_price("AAPL", 100)

    async def main():
        broker = LinkLostWhileLookingUp(
            "ib",
            host="127.0.0.1",
            port=fake.port,
            client_id=7,
            account=None,
            timeout=2.0,
            clock=FixedClock(),
        )
        broker.fake = fake
        await broker.connect()
        try:
            await broker.submit(stop("c-old", **STOP_95))
            broker.lose_link_at = "c-new"
            with pytest.raises(BrokerUnavailable):
                await broker.replace("c-old", stop("c-new", **STOP_98))
            assert [p["orderRef"] for p in fake.logged("placeOrder")] == ["c-old"]
            fake.inject_error(1102, "Connectivity restored, data maintained")
            await until(lambda: broker._link_lost is None)
            moved = await broker.replace("c-old", stop("c-new2", **STOP_98))
            assert (moved.client_order_id, moved.stop_price) == ("c-new2", D(98))
            (held,) = fake.orders.values()
            assert (held.order_ref, held.aux_price) == ("c-new2", D(98))
        finally:
            await broker.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("commission", "currency", "expected"),
    [
        (1.25, "USD", (Decimal("1.25"), "USD")),
        (0.0, "", (None, None)),  # the report has not arrived: unknown, not free
        (1.7976931348623157e308, "USD", (None, None)),  # IB's UNSET_DOUBLE
    ],
)
def test_an_executions_commission_report_is_the_fills_fee(commission, currency, expected):
    at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    execution = ib_async.Execution(execId="0001.01", side="BOT", shares=2.0, price=5000.25, time=at)
    report = ib_async.CommissionReport(execId="0001.01", commission=commission, currency=currency)
    fill = ib_async.Fill(ib_async.Contract(symbol="ES"), execution, report, at)
    found = ibkr_orders.to_fill("c-1", "ESZ2026", fill, "0001")
    assert (found.fee, found.fee_currency) == expected
    assert (found.quantity, found.price) == (2, Decimal("5000.25"))
