"""Emulated brackets (SPEC §8): for a broker without native brackets, tradepipe places the
take-profit / stop-loss once the entry fills and cancels the survivor when one fills.

The real paper broker with `native_brackets = false` plays such a broker; the engine and journal
are real. The same scenarios with native brackets are in test_engine.py.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from tests.helpers import write_config
from tests.test_engine import BRACKET, Harness, run
from tradepipe.brokers.paper.broker import Fault, PaperBroker
from tradepipe.brokers.paper.matching import Matching
from tradepipe.core.brackets import (
    Cancel,
    Drop,
    Place,
    Resize,
    Wait,
    is_resize,
    next_step,
    resized_id,
)
from tradepipe.core.ids import leg_of
from tradepipe.core.model import OrderRequest, OrderState
from tradepipe.daemon.serve import Actions
from tradepipe.engine import Engine
from tradepipe.errors import BrokerUnavailable

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
            # As record_state journals an answer: the order and its fills in one unit.
            with h.journal.transaction():
                h.journal.update_order(
                    state.client_order_id,
                    status=state.status,
                    filled_quantity=state.filled_quantity,
                )
                journaled = h.journal.order_by_client_id(state.client_order_id)
                for fill in state.fills:
                    h.journal.record_fill(
                        fill_id=f"paper:{fill.fill_id}",
                        order_id=journaled["id"],
                        account="paper",
                        ticker="AAPL",
                        side=fill.side,
                        quantity=fill.quantity,
                        price=fill.price,
                        filled_at=fill.filled_at,
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


# -- races and failures (found in review; each of these once left a position unprotected or
# flipped it) ------------------------------------------------------------------------------------


def test_an_exit_right_behind_the_bracket_leaves_no_orphan_children(tmp_path):
    async def test(h: Harness):
        _, exit_ = await h.send(BRACKET, {"ticker": "AAPL", "action": "exit", "signalPrice": 100})
        assert h.deliveries(exit_)[0][0] == "submitted"
        assert h.position() == 0
        assert await at_broker(h) == []  # the exit canceled the bracket it found working
        await quote(h, 94)
        assert h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_an_exit_whose_price_fills_the_resting_entry_cancels_the_new_bracket(tmp_path):
    async def test(h: Harness):
        await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        (exit_,) = await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 98})
        assert h.deliveries(exit_) == [("submitted", "exit long 5 of 5")]
        assert await at_broker(h) == []
        await quote(h, 93)  # a left-over stop would sell 5 more here
        assert h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_breakeven_right_behind_the_bracket_moves_its_stop_not_a_second_one(tmp_path):
    async def test(h: Harness):
        _, be = await h.send(BRACKET, {"ticker": "AAPL", "action": "breakeven", "signalPrice": 104})
        assert "move the stop of the long 5 from 95 to breakeven 100" in h.deliveries(be)[0][1]
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]
        await quote(h, 99)
        await quote(h, 94)
        assert h.position() == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_a_crash_inside_a_breakeven_replace_finishes_it_at_restart(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send(BRACKET)
        h.engine.brokers["paper"].inject(Fault.TIMEOUT, "read timeout")  # sent, answer lost
        (be,) = await h.send({"ticker": "AAPL", "action": "breakeven", "signalPrice": 104})
        assert h.deliveries(be)[0][0] == "failed"
        await h.crash_and_restart(be, orders_submitting=True)
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]  # one stop, at 100
        (moved,) = h.journal.orders(signal_id=be)
        assert (moved["status"], moved["stop_price"]) == ("accepted", "100")
        assert legs(h, buy)["stop_loss"]["status"] == "canceled"

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_an_entry_whose_answer_was_lost_still_gets_its_bracket_once_it_fills(tmp_path):
    async def test(h: Harness):
        h.engine.brokers["paper"].inject(Fault.TIMEOUT, "read timeout")
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        ((status, reason),) = h.deliveries(buy)
        assert status == "failed" and "read timeout" in reason
        order = legs(h, buy)
        # The entry's lost answer was looked up by its id: it rests at the broker.
        assert order["entry"]["status"] == "accepted"
        assert (order["take_profit"]["status"], order["stop_loss"]["status"]) == ("held", "held")
        await quote(h, 98)  # the entry fills at the broker; its children follow
        assert h.position() == 5
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]
        assert legs(h, buy)["entry"]["status"] == "filled"

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_a_broker_down_at_start_does_not_stop_the_engine(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        await h.engine.stop()
        h.journal.update_order(legs(h, buy)["take_profit"]["client_order_id"], status="submitting")
        h.engine = h.new_engine()
        h.engine.brokers["paper"].inject(Fault.DOWN, "connection refused")
        await h.engine.start()  # logs the failure and serves on
        h.engine.brokers["paper"].heal()
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 1, "signalPrice": 98}
        )
        assert h.deliveries(sell)[0][0] == "submitted"

    run(write_config(tmp_path, account=NO_BRACKETS), test)


def test_emulated_children_keep_the_entrys_extended_hours(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send({**BRACKET, "extendedHours": True})
        for order in h.journal.orders(signal_id=buy):
            sent = h.journal.paper_order("paper", order["client_order_id"])
            assert json.loads(sent["request"])["extended_hours"] is True, order["role"]

    run(write_config(tmp_path, account=NO_BRACKETS), test)


# -- a child that fills in part (the other is kept to what the position still holds) ----------


class ThinMatching(Matching):
    """The paper broker's matching, where an order named in `at_most` fills only that much of
    itself at the next mark that crosses it (the rest keeps resting)."""

    def __init__(self, ledger, at_most: dict[str, Decimal]) -> None:
        super().__init__(ledger)
        self.at_most = at_most

    def fill(self, request: OrderRequest, price: Decimal, now) -> None:
        cid = request.client_order_id
        row = self.journal.paper_order(self.account, cid)
        assert row is not None
        done = D(row["filled_quantity"])
        if cid not in self.at_most and done == 0:
            super().fill(request, price, now)
            return
        part = min(request.quantity - done, self.at_most.pop(cid, request.quantity))
        self.journal.paper_apply_fill(
            account=self.account,
            fill_id=f"{cid}-{len(self.journal.paper_fills(self.account, cid)) + 1}",
            client_order_id=cid,
            ticker=request.ticker,
            side=request.side,
            quantity=part,
            price=price,
            filled_at=now,
            cash=self.ledger.cash(),
        )
        average = D(row["average_fill_price"] or 0)
        self.journal.paper_update_order(
            self.account,
            cid,
            status="filled" if done + part == request.quantity else "partially_filled",
            filled_quantity=done + part,
            average_fill_price=(average * done + price * part) / (done + part),
            updated_at=now,
        )


class ThinBook(PaperBroker):
    """The paper broker where a resting order can meet too little volume: after
    `fill_at_most(id, q)` the next mark that crosses the order fills only q of it, and the rest
    keeps resting (the paper broker itself always fills whole). `stall_before` / `stall_after`
    name a call ("submit", "cancel") that the next time stops before the books hear of it, or
    after they took it and before its answer: what a kill -9 there leaves. `calls` logs every
    submit and cancel by client order id, across restarts."""

    def __init__(self, *args, calls: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = calls
        self.at_most: dict[str, Decimal] = {}
        self.matching = ThinMatching(self.ledger, self.at_most)
        self.stall_before: str | None = None
        self.stall_after: str | None = None
        self.stalled = asyncio.Event()

    def fill_at_most(self, client_order_id: str, quantity) -> None:
        self.at_most[client_order_id] = D(quantity)

    async def _stall(self, when: str, call: str) -> None:
        if getattr(self, f"stall_{when}") == call:
            setattr(self, f"stall_{when}", None)
            self.stalled.set()
            await asyncio.Event().wait()  # until the engine is stopped: the "kill -9"

    async def submit_bracket(self, entry: OrderRequest, children) -> list[OrderState]:
        await self._stall("before", "submit")
        self.calls.append(("submit", entry.client_order_id))
        states = await super().submit_bracket(entry, children)
        await self._stall("after", "submit")
        return states

    async def cancel(self, client_order_id: str, *, ticker: str | None = None):
        await self._stall("before", "cancel")
        self.calls.append(("cancel", client_order_id))
        state = await super().cancel(client_order_id, ticker=ticker)
        await self._stall("after", "cancel")
        return state


class ThinHarness(Harness):
    """The engine harness on a `ThinBook` paper account without native brackets."""

    def new_engine(self) -> Engine:
        if not hasattr(self, "calls"):
            self.calls: list[tuple[str, str]] = []
        book = ThinBook(
            "paper",
            self.journal,
            cash=D(self.config.accounts["paper"].cash),
            clock=self.clock,
            native_brackets=False,
            calls=self.calls,
        )
        return Engine(self.config, self.journal, {"paper": book}, self.clock)

    @property
    def book(self) -> ThinBook:
        book = self.engine.brokers["paper"]
        assert isinstance(book, ThinBook)
        return book


def run_thin(tmp_path, test) -> None:
    run(write_config(tmp_path, account=NO_BRACKETS), test, ThinHarness)


def by_role(h: Harness, signal_id: int, role: str) -> list[dict]:
    """The signal's orders of one role, oldest first (a resized leg has several)."""
    return sorted(
        (o for o in h.journal.orders(signal_id=signal_id) if o["role"] == role),
        key=lambda o: o["id"],
    )


async def crash_inside(h: ThinHarness, work) -> None:
    """Run `work` until the book stalls inside it, then stop the engine there: the journal and
    the broker are left as a kill -9 at that step leaves them."""
    moving = asyncio.create_task(work)
    stalled = asyncio.create_task(h.book.stalled.wait())
    await asyncio.wait({moving, stalled}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert h.book.stalled.is_set(), "the engine never made the call that was to stall"
    await h.engine.stop()
    moving.cancel()
    stalled.cancel()


async def held_at_broker(h: Harness) -> Decimal:
    return (await h.engine.brokers["paper"].position("AAPL")).quantity


def test_a_take_profit_filled_in_part_shrinks_the_stop_to_what_is_held(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)  # long 5 at 100: take-profit 110, stop 95
        (tp,) = by_role(h, buy, "take_profit")
        (stop,) = by_role(h, buy, "stop_loss")
        h.book.fill_at_most(tp["client_order_id"], 2)
        await quote(h, 111)  # only 2 of the take-profit's 5 find a buyer
        assert h.position() == 3
        (tp,) = by_role(h, buy, "take_profit")
        assert (tp["status"], tp["filled_quantity"]) == ("partially_filled", "2")
        assert await at_broker(h) == [("limit", "5"), ("stop", "3")]  # not 5: 3 are held
        old, new = by_role(h, buy, "stop_loss")
        assert old["client_order_id"] == stop["client_order_id"]
        assert old["status"] == "canceled"
        assert f"resized: {new['client_order_id']} takes its place" in old["broker_message"]
        assert new["client_order_id"] == f"{stop['client_order_id']}R1"
        assert (new["status"], new["quantity"], new["stop_price"]) == ("accepted", "3", "95")
        assert (new["replaces"], new["parent_id"]) == (old["client_order_id"], old["parent_id"])
        assert await at_broker(h) == [("limit", "5"), ("stop", "3")]
        await quote(h, 94)  # the price turns: the stop sells the 3 still held, not 5
        assert h.position() == 0 and await held_at_broker(h) == 0
        (tp,) = by_role(h, buy, "take_profit")
        assert tp["status"] == "canceled" and "one-cancels-other" in tp["broker_message"]
        assert await at_broker(h) == []

    run_thin(tmp_path, test)


def test_a_stop_filled_in_part_shrinks_the_take_profit_to_what_is_held(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)
        (stop,) = by_role(h, buy, "stop_loss")
        h.book.fill_at_most(stop["client_order_id"], 2)
        await quote(h, 94)  # the stop triggers; only 2 of its 5 are sold
        assert h.position() == 3
        assert await at_broker(h) == [("limit", "3"), ("stop", "5")]  # not 5: 3 are held
        old, new = by_role(h, buy, "take_profit")
        assert (old["status"], new["status"], new["quantity"]) == ("canceled", "accepted", "3")
        assert new["limit_price"] == old["limit_price"] == "110"
        assert await at_broker(h) == [("limit", "3"), ("stop", "5")]
        await quote(h, 111)  # the price turns up: the take-profit sells the 3 still held
        assert h.position() == 0 and await held_at_broker(h) == 0
        (stop,) = by_role(h, buy, "stop_loss")
        assert (stop["status"], stop["filled_quantity"]) == ("canceled", "2")
        assert await at_broker(h) == []

    run_thin(tmp_path, test)


def test_both_legs_filling_in_turn_never_sell_more_than_the_entry_bought(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)
        (tp,) = by_role(h, buy, "take_profit")
        h.book.fill_at_most(tp["client_order_id"], 2)
        await quote(h, 111)  # take-profit 2 of 5: the stop shrinks to 3
        (_, stop) = by_role(h, buy, "stop_loss")
        h.book.fill_at_most(stop["client_order_id"], 1)
        await quote(h, 94)  # stop 1 of 3: the take-profit (3 left of 5) shrinks to 2
        assert h.position() == 2
        _, tp2 = by_role(h, buy, "take_profit")
        assert (tp2["client_order_id"], tp2["quantity"]) == (f"{tp['client_order_id']}R1", "2")
        assert await at_broker(h) == [("limit", "2"), ("stop", "3")]
        await quote(h, 111)
        assert h.position() == 0 and await held_at_broker(h) == 0
        assert await at_broker(h) == []

    run_thin(tmp_path, test)


def test_a_crash_between_journaling_a_resize_and_the_broker_call_sends_it_once(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)
        (tp,) = by_role(h, buy, "take_profit")
        (stop,) = by_role(h, buy, "stop_loss")
        h.book.fill_at_most(tp["client_order_id"], 2)
        h.book.stall_before = "cancel"  # the resize is journaled; the broker hears nothing
        await crash_inside(h, quote(h, 111))
        old, new = by_role(h, buy, "stop_loss")
        assert (old["status"], new["status"]) == ("accepted", "submitting")
        assert await at_broker(h) == [("limit", "5"), ("stop", "5")]
        h.engine = h.new_engine()
        await h.engine.start()
        await h.engine.drain()
        old, new = by_role(h, buy, "stop_loss")
        assert (old["status"], new["status"], new["quantity"]) == ("canceled", "accepted", "3")
        assert await at_broker(h) == [("limit", "5"), ("stop", "3")]
        assert h.calls.count(("submit", new["client_order_id"])) == 1
        assert ("cancel", stop["client_order_id"]) in h.calls
        # Restarted once more, nothing moves again.
        await h.engine.stop()
        h.engine = h.new_engine()
        await h.engine.start()
        await h.engine.drain()
        assert h.calls.count(("submit", new["client_order_id"])) == 1
        assert await at_broker(h) == [("limit", "5"), ("stop", "3")]
        await quote(h, 94)
        assert h.position() == 0 and await held_at_broker(h) == 0

    run_thin(tmp_path, test)


def test_a_crash_after_the_broker_took_the_resized_order_finds_it_by_its_id(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)
        (tp,) = by_role(h, buy, "take_profit")
        h.book.fill_at_most(tp["client_order_id"], 2)
        h.book.stall_after = "submit"  # the broker has the new stop; its answer is lost
        await crash_inside(h, quote(h, 111))
        old, new = by_role(h, buy, "stop_loss")
        assert (old["status"], new["status"]) == ("canceled", "submitting")
        h.engine = h.new_engine()
        await h.engine.start()
        await h.engine.drain()
        old, new = by_role(h, buy, "stop_loss")
        assert (new["status"], new["quantity"]) == ("accepted", "3")
        assert h.calls.count(("submit", new["client_order_id"])) == 1  # looked up, not sent
        assert await at_broker(h) == [("limit", "5"), ("stop", "3")]

    run_thin(tmp_path, test)


def test_an_entry_filled_in_part_then_ended_gets_children_for_what_it_bought(tmp_path):
    async def test(h: ThinHarness):
        (buy,) = await h.send({**BRACKET, "orderType": "limit", "limitPrice": 99})
        (entry,) = by_role(h, buy, "entry")
        h.book.fill_at_most(entry["client_order_id"], 2)
        await quote(h, 98)  # 2 of 5 bought; the children wait for the rest
        children = [o for o in h.journal.orders(signal_id=buy) if o["parent_id"]]
        assert [o["status"] for o in children] == ["held", "held"]
        await h.book.cancel(entry["client_order_id"])  # the broker ends the rest (the close)
        await h.engine.reconcile_everything()  # the periodic check learns it
        await h.engine.drain()
        assert h.position() == 2
        assert await at_broker(h) == [("limit", "2"), ("stop", "2")]
        await quote(h, 94)
        assert h.position() == 0

    run_thin(tmp_path, test)


class FlakyCancel(ThinBook):
    """A ThinBook whose cancel of one order times out once (the broker did not answer)."""

    fail_cancel_of: str | None = None

    async def cancel(self, client_order_id, *, ticker=None):
        if client_order_id == self.fail_cancel_of:
            self.fail_cancel_of = None
            raise BrokerUnavailable("paper: cancel timed out (injected)")
        return await super().cancel(client_order_id, ticker=ticker)


class FlakyHarness(ThinHarness):
    def new_engine(self) -> Engine:
        if not hasattr(self, "calls"):
            self.calls = []
        book = FlakyCancel(
            "paper",
            self.journal,
            cash=D(self.config.accounts["paper"].cash),
            clock=self.clock,
            native_brackets=False,
            calls=self.calls,
        )
        return Engine(self.config, self.journal, {"paper": book}, self.clock)


def test_a_flatten_during_an_unfinished_resize_leaves_no_stop_on_the_flat_position(tmp_path):
    """The take-profit fills 2 of 5, the stop's resize is journaled, its old stop's cancel
    times out; then the operator flattens. The resized stop (journaled, unsent) must not be
    placed afterwards for the 3 the bracket once held: the position is flat (found by a
    review: the stop was placed, and the account went short 3 when the price fell)."""

    async def test(h: FlakyHarness):
        (buy,) = await h.send(BRACKET)
        (tp,) = by_role(h, buy, "take_profit")
        (sl,) = by_role(h, buy, "stop_loss")
        h.book.fill_at_most(tp["client_order_id"], 2)
        h.book.fail_cancel_of = sl["client_order_id"]
        await quote(h, 111)
        assert [o["status"] for o in by_role(h, buy, "stop_loss")] == ["accepted", "submitting"]
        await h.engine.flatten("paper", "AAPL")
        await h.engine.drain()
        assert h.position() == 0 and await held_at_broker(h) == 0
        assert await at_broker(h) == []
        assert by_role(h, buy, "stop_loss")[1]["status"] == "canceled"
        await quote(h, 94)
        assert h.position() == 0 and await held_at_broker(h) == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test, FlakyHarness)


def test_a_breakeven_whose_answer_was_lost_then_a_partial_take_profit_leaves_one_stop(tmp_path):
    """The breakeven's move reached the broker but its answer was lost (the old stop still
    'accepted', the new one 'unknown' in the journal); then the take-profit fills 2 of 5. The
    old stop must not be resized as if it still rested: the lost answer is settled first, the
    old stop ends replaced, and only the breakeven stop is cut to 3 (found by a review: two
    stops rested, 3 + 5, and the account went short 5)."""

    async def test(h: ThinHarness):
        (buy,) = await h.send(BRACKET)
        h.book.inject(Fault.TIMEOUT, "read timeout")  # the replace happens; its answer is lost
        await h.send({"ticker": "AAPL", "action": "breakeven", "signalPrice": 104})
        (tp,) = by_role(h, buy, "take_profit")
        h.book.fill_at_most(tp["client_order_id"], 2)
        await quote(h, 111)
        stops = [o for o in await at_broker(h) if o[0] == "stop"]
        assert stops == [("stop", "3")]
        await quote(h, 94)
        assert h.position() == 0 and await held_at_broker(h) == 0

    run(write_config(tmp_path, account=NO_BRACKETS), test, ThinHarness)


# -- the decision, on journal rows (tradepipe.core.brackets, pure) --------------------------------


def row(cid: str, status: str, quantity="5", filled="0", replaces=None) -> dict:
    return {
        "client_order_id": cid,
        "status": status,
        "quantity": quantity,
        "filled_quantity": filled,
        "replaces": replaces,
        "parent_id": 1,
    }


ENTRY = {**row("tpab-1-x-e", "filled", filled="5"), "parent_id": None}
TP, SL = "tpab-1-x-t", "tpab-1-x-s"


@pytest.mark.parametrize(
    "entry, child, siblings, step",
    [
        # held until the entry ends; then placed for what it bought (less what siblings sold)
        (
            {**ENTRY, "status": "partially_filled", "filled_quantity": "2"},
            row(TP, "held"),
            [row(SL, "held")],
            Wait,
        ),
        (
            {**ENTRY, "status": "canceled", "filled_quantity": "2"},
            row(TP, "held"),
            [row(SL, "held")],
            Place(D(2)),
        ),
        (
            {**ENTRY, "status": "canceled", "filled_quantity": "0"},
            row(TP, "held"),
            [row(SL, "held")],
            Drop,
        ),
        (ENTRY, row(TP, "submitting"), [row(SL, "accepted", filled="1")], Place(D(4))),
        (ENTRY, row(TP, "held"), [row(SL, "partially_filled", filled="5")], Drop),
        # one fills whole: the other is canceled (at the broker, or never placed)
        (ENTRY, row(SL, "accepted"), [row(TP, "filled", filled="5")], Cancel),
        (ENTRY, row(SL, "held"), [row(TP, "filled", filled="5")], Drop),
        # one fills in part: the other shrinks to what is held
        (
            ENTRY,
            row(SL, "accepted"),
            [row(TP, "partially_filled", filled="2")],
            Resize(f"{SL}R1", D(3)),
        ),
        (ENTRY, row(TP, "partially_filled", filled="2"), [row(SL, "accepted")], Wait),
        (
            ENTRY,
            row(f"{SL}R1", "accepted", "3", replaces=SL),
            [row(TP, "partially_filled", filled="2"), row(SL, "canceled")],
            Wait,
        ),
        (
            ENTRY,
            row(TP, "partially_filled", filled="2"),
            [row(SL, "canceled"), row(f"{SL}R1", "partially_filled", "3", "1", SL)],
            Resize(f"{TP}R1", D(2)),
        ),
        (ENTRY, row(SL, "accepted", filled="3"), [row(TP, "canceled", filled="2")], Cancel),
        (ENTRY, row(SL, "unknown"), [row(TP, "partially_filled", filled="2")], Wait),
        # a resize half done: the old one goes first, the new one is sent after it ended
        (
            ENTRY,
            row(SL, "accepted"),
            [row(TP, "partially_filled", filled="2"), row(f"{SL}R1", "submitting", "3", "0", SL)],
            Cancel,
        ),
        (
            ENTRY,
            row(f"{SL}R1", "submitting", "3", replaces=SL),
            [row(TP, "partially_filled", filled="2"), row(SL, "accepted")],
            Wait,
        ),
        (
            ENTRY,
            row(f"{SL}R1", "submitting", "3", replaces=SL),
            [row(TP, "partially_filled", filled="3"), row(SL, "canceled")],
            Place(D(2)),
        ),
        (
            ENTRY,
            row(f"{SL}R1", "submitting", "3", replaces=SL),
            [row(TP, "partially_filled", filled="2"), row(SL, "filled", filled="5")],
            Cancel,
        ),
        # a breakeven stop in the stop's place: its own delivery sends it
        (ENTRY, row("tpab-2-x-b", "submitting", replaces=SL), [row(SL, "accepted")], Wait),
        (ENTRY, row(SL, "accepted"), [row("tpab-2-x-b", "submitting", replaces=SL)], Wait),
    ],
)
def test_next_step(entry, child, siblings, step):
    found = next_step(entry, child, siblings, closable=D(5))
    if isinstance(step, type):
        assert isinstance(found, step), found
    else:
        assert found == step


BE = "tpab-2-x-b"  # a breakeven stop that moves SL


@pytest.mark.parametrize(
    "child, siblings, closable, step",
    [
        # what the position lets a child close caps it: placed, resized, or dropped/canceled
        (row(TP, "held"), [row(SL, "held")], D(0), Drop),
        (row(TP, "held"), [row(SL, "held")], D(3), Place(D(3))),
        (row(f"{SL}R1", "submitting", "3", replaces=SL), [row(SL, "canceled")], D(0), Drop),
        (row(SL, "accepted"), [row(TP, "accepted")], D(0), Cancel),
        (row(SL, "accepted"), [row(TP, "accepted")], D(-5), Cancel),  # now short: nothing
        (row(SL, "accepted"), [row(TP, "accepted")], D(4), Resize(f"{SL}R1", D(4))),
        (row(SL, "accepted"), [row(TP, "accepted")], D(9), Wait),  # more held (added): as is
        # a breakeven that moved the stop: by its fate
        (
            row(SL, "accepted"),
            [row(TP, "accepted"), row(BE, "accepted", replaces=SL)],
            D(5),
            Cancel,
        ),
        (row(SL, "accepted"), [row(TP, "accepted"), row(BE, "unknown", replaces=SL)], D(3), Wait),
        (row(SL, "accepted"), [row(TP, "accepted"), row(BE, "rejected", replaces=SL)], D(5), Wait),
        (
            row(SL, "accepted"),
            [row(TP, "accepted"), row(BE, "rejected", replaces=SL)],
            D(3),
            Resize(f"{SL}R1", D(3)),
        ),
        (row(SL, "unknown"), [row(TP, "accepted"), row(BE, "accepted", replaces=SL)], D(5), Wait),
    ],
)
def test_next_step_within_the_position_and_after_a_breakeven(child, siblings, closable, step):
    found = next_step(ENTRY, child, siblings, closable=closable)
    if isinstance(step, type):
        assert isinstance(found, step), found
    else:
        assert found == step


def test_a_resized_id_counts_its_resizes_and_stays_one_of_ours():
    assert resized_id("tpab12-1z-c95720-s") == "tpab12-1z-c95720-sR1"
    assert resized_id("tpab12-1z-c95720-sR1") == "tpab12-1z-c95720-sR2"
    assert resized_id("tpab12-1z-c95720-b2R9") == "tpab12-1z-c95720-b2Ra"
    assert resized_id("tpab12-1z-c95720-brR1") == "tpab12-1z-c95720-brR2"  # (breakeven-27)
    assert leg_of(resized_id("tpab12-1z-c95720-t")) == "take_profit"
    assert is_resize(row("tpab12-1-c-sR1", "submitting", replaces="tpab12-1-c-s"))
    assert not is_resize(row("tpab12-2-c-b", "submitting", replaces="tpab12-1-c-s"))
    with pytest.raises(ValueError, match="32-character rule"):
        resized_id("tpab12-" + "z" * 15 + "-c95720-s")
    # A breakeven stop whose id is too long to resize is still told apart, never an error.
    long_stop = "tpab12-" + "z" * 15 + "-c95720-b"
    assert not is_resize(row("tpab12-2-c-b", "submitting", replaces=long_stop))
