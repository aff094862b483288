"""Emulated brackets (SPEC §8): for a broker without native brackets, tradepipe places the
take-profit / stop-loss once the entry fills and cancels the survivor when one fills.

The real paper broker with `native_brackets = false` plays such a broker; the engine and journal
are real. The same scenarios with native brackets are in test_engine.py.
"""

from __future__ import annotations

from decimal import Decimal

from tests.helpers import write_config
from tests.test_engine import BRACKET, Harness, run
from tradepipe.brokers.paper import Fault
from tradepipe.daemon import Actions

D = Decimal
NO_BRACKETS = "native_brackets = false\n"


def legs(h: Harness, signal_id: int) -> dict[str, dict]:
    return {o["role"]: o for o in h.journal.orders(signal_id=signal_id)}


async def at_broker(h: Harness) -> list[tuple[str, str]]:
    orders = await h.engine.brokers["paper"].open_orders("AAPL")
    return sorted((str(o.order_type), str(o.quantity)) for o in orders)


async def quote(h: Harness, price) -> None:
    await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(price))
    await h.engine.drain()


def test_children_are_placed_after_the_entry_fills_and_one_cancels_the_other(tmp_path):
    async def test(h: Harness):
        assert not h.engine.brokers["paper"].capabilities.brackets
        (buy,) = await h.send(BRACKET)
        assert h.deliveries(buy)[0][0] == "submitted"
        order = legs(h, buy)
        assert order["entry"]["status"] == "filled"
        assert (order["take_profit"]["status"], order["stop_loss"]["status"]) == (
            "accepted",
            "accepted",
        )
        assert order["take_profit"]["parent_id"] == order["entry"]["id"]
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]  # two plain orders
        await quote(h, 111)  # the take-profit fills; tradepipe cancels the stop
        order = legs(h, buy)
        assert order["take_profit"]["status"] == "filled"
        assert order["stop_loss"]["status"] == "canceled"
        assert (
            "one-cancels-other: " + order["take_profit"]["client_order_id"]
            in (order["stop_loss"]["broker_message"])
        )
        assert await at_broker(h) == [] and h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_children_of_a_resting_entry_are_held_by_tradepipe_until_it_fills(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        order = legs(h, buy)
        assert (order["take_profit"]["status"], order["stop_loss"]["status"]) == ("held", "held")
        assert await at_broker(h) == [("limit", "5")]  # only the entry is at the broker
        await quote(h, 98)  # the entry fills at its limit, 99
        order = legs(h, buy)
        assert order["entry"]["status"] == "filled"
        assert (order["take_profit"]["limit_price"], order["stop_loss"]["stop_price"]) == (
            "108.9",
            "94",
        )
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]
        await quote(h, 93)  # the stop fills; tradepipe cancels the take-profit
        order = legs(h, buy)
        assert order["stop_loss"]["status"] == "filled"
        assert order["take_profit"]["status"] == "canceled"
        assert h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_children_of_an_entry_that_never_fills_are_never_placed(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        (cancel,) = await h.send({"ticker": "AAPL", "action": "cancel"})
        assert h.deliveries(cancel)[0][0] == "submitted"
        order = legs(h, buy)
        assert order["entry"]["status"] == "canceled"
        assert {order["take_profit"]["status"], order["stop_loss"]["status"]} == {"canceled"}
        await quote(h, 98)
        assert await at_broker(h) == [] and h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_a_child_the_broker_refuses_is_journaled_in_its_words(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        h.engine.brokers["paper"].inject(Fault.REJECT, "stop orders are halted for AAPL")
        await quote(h, 98)
        order = legs(h, buy)
        refused = [o for o in order.values() if o["status"] == "rejected"]
        assert [o["broker_message"] for o in refused] == ["stop orders are halted for AAPL"]
        assert h.position() == 5  # the entry filled; the operator sees the missing leg

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_a_stop_after_the_entry_filled_places_the_children_once_at_the_next_start(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        # What a kill -9 leaves when the entry filled and the children were not yet sent:
        await h.engine.stop()
        broker = h.engine.brokers["paper"]
        for state in await broker.observe_price("AAPL", D(98)):
            h.journal.update_order(
                state.client_order_id, status=state.status, filled_quantity=state.filled_quantity
            )
        order = legs(h, buy)
        assert order["entry"]["status"] == "filled" and order["stop_loss"]["status"] == "held"
        # ... and one child whose submission was under way (journaled, not yet sent).
        tp = order["take_profit"]["client_order_id"]
        h.journal.update_order(tp, status="submitting")
        h.engine = h.new_engine()
        await h.engine.start()
        await h.engine.drain()
        order = legs(h, buy)
        assert (order["take_profit"]["status"], order["stop_loss"]["status"]) == (
            "accepted",
            "accepted",
        )
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]
        # Once more: nothing is sent twice, the broker's copy is found by its id.
        await h.engine.stop()
        h.journal.update_order(tp, status="submitting")
        h.engine = h.new_engine()
        await h.engine.start()
        await h.engine.drain()
        assert legs(h, buy)["take_profit"]["status"] == "accepted"
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_a_new_signal_cancels_children_still_held_with_the_open_orders(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        await h.send({"ticker": "AAPL", "action": "sell", "quantity": 1})
        order = legs(h, buy)
        assert order["entry"]["status"] == "canceled"
        assert order["stop_loss"]["broker_message"] == "canceled with the open orders"
        assert h.position() == -1

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_breakeven_moves_an_emulated_stop_and_the_take_profit_still_cancels_it(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send(BRACKET)
        (be,) = await h.send({"ticker": "AAPL", "action": "breakeven", "signalPrice": 104})
        (moved,) = h.journal.orders(signal_id=be)
        assert (moved["stop_price"], moved["status"]) == ("100", "accepted")
        assert moved["parent_id"] == legs(h, buy)["entry"]["id"]
        await quote(h, 111)
        (moved,) = h.journal.orders(signal_id=be)
        assert moved["status"] == "canceled" and "one-cancels-other" in moved["broker_message"]
        assert await at_broker(h) == [] and h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)
