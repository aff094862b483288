"""The engine with the real paper broker and a real journal file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import FixedClock, write_config
from tradepipe.brokers.paper.broker import Fault, PaperBroker
from tradepipe.config import load_config
from tradepipe.core.model import OrderState, OrderStatus
from tradepipe.core.signal import parse_signal, signal_to_json
from tradepipe.daemon.serve import make_brokers
from tradepipe.engine import Engine
from tradepipe.journal import Journal

D = Decimal


class Harness:
    """Signals journaled as the webhook journals them, then handed to a real engine."""

    def __init__(self, config_path: Path) -> None:
        self.config = load_config(config_path)
        self.clock = FixedClock()
        self.journal = Journal.open(Path(self.config.journal.path))
        self.engine = self.new_engine()

    def new_engine(self) -> Engine:
        brokers = make_brokers(self.config, self.journal, self.clock)
        return Engine(self.config, self.journal, brokers, self.clock, fill_poll_interval=0.01)

    def journal_signal(self, payload: dict) -> tuple[int, object]:
        signal = parse_signal(payload).signal
        assert signal is not None
        signal_id = self.journal.record_signal(
            strategy="trend",
            received_at=self.clock(),
            source="test",
            body=json.dumps(payload),
            payload=json.dumps(signal_to_json(signal)),
            ticker=signal.ticker,
            action=signal.action,
            status="accepted",
            http_status=200,
        )
        return signal_id, signal

    async def send(self, *payloads: dict) -> list[int]:
        ids = []
        for payload in payloads:
            signal_id, signal = self.journal_signal(payload)
            self.engine.enqueue(signal_id, "trend", signal)
            ids.append(signal_id)
        await self.engine.drain()
        return ids

    async def crash_and_restart(self, signal_id: int, *, orders_submitting: bool = False) -> None:
        """Rewind the journal to what a kill -9 mid-delivery leaves (signal accepted, delivery
        planned; optionally its orders still 'submitting'), then start a new engine on it."""
        with self.journal.transaction():
            execute = self.journal.conn.execute
            execute("UPDATE signals SET status = 'accepted' WHERE id = ?", (signal_id,))
            execute("UPDATE deliveries SET status = 'planned' WHERE signal_id = ?", (signal_id,))
            if orders_submitting:
                execute("UPDATE orders SET status = 'submitting' WHERE signal_id = ?", (signal_id,))
        await self.engine.stop()
        self.engine = self.new_engine()
        await self.engine.start()
        await self.engine.drain()

    def deliveries(self, signal_id: int) -> list[tuple[str, str]]:
        return [(d["status"], d["reason"]) for d in self.journal.deliveries_for([signal_id])]

    def position(self, ticker: str = "AAPL") -> Decimal:
        found = self.journal.position("paper", ticker)
        return found[0] if found else D(0)


BRACKET = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": 5,
    "signalPrice": 100,
    "takeProfit": {"percent": 10},
    "stopLoss": {"amount": 5},
}


def run(config_path: Path, test, harness_class: type[Harness] = Harness) -> None:
    """Start an engine on the config, run `test(harness)` on it, then stop and close."""

    async def main():
        harness = harness_class(config_path)
        harness.journal.group_commits()  # as the daemon runs it
        await harness.engine.start()
        try:
            await test(harness)
        finally:
            await harness.engine.stop()
            harness.journal.close()

    asyncio.run(main())


def test_entry_reversal_and_exit(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        assert h.position() == 5
        assert h.deliveries(buy) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 3, "signalPrice": 110}
        )
        assert h.position() == -3
        assert h.deliveries(sell) == [("submitted", "exit long 5, wait for the fill, then sell 3")]
        roles = [
            (o["role"], o["side"], o["quantity"], o["status"])
            for o in h.journal.orders(signal_id=sell)
        ]
        assert roles == [("entry", "sell", "3", "filled"), ("exit", "sell", "5", "filled")]
        (exit_,) = await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 105})
        assert h.position() == 0
        assert h.journal.signal(exit_)["status"] == "processed"

    run(write_config(tmp_path), test)


def test_signals_for_one_ticker_are_processed_in_arrival_order(tmp_path):
    async def test(h: Harness):
        burst = [
            {"ticker": "AAPL", "action": a, "quantity": 1, "signalPrice": 100, "id": f"s{i}"}
            for i, a in enumerate(["buy", "sell"] * 10 + ["buy"])
        ]
        await h.send(*burst)
        assert h.position() == 1
        order_ids = [o["id"] for o in reversed(h.journal.orders())]
        signals = [o["signal_id"] for o in reversed(h.journal.orders())]
        assert order_ids == sorted(order_ids) and signals == sorted(signals)

    run(write_config(tmp_path), test)


def test_broker_rejection_is_journaled_in_the_brokers_words(tmp_path):
    async def test(h: Harness):
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5000, "signalPrice": 100}
        )
        ((status, reason),) = h.deliveries(signal_id)
        assert status == "rejected"
        assert reason == (
            "paper rejected the entry order: paper broker: buy 5000 AAPL at 100 needs"
            " 500,000.00 of buying power (longs are paid in full, no margin); 100,000.00 available"
        )
        (order,) = h.journal.orders(signal_id=signal_id)
        assert order["status"] == "rejected"
        assert "needs 500,000.00 of buying power" in order["broker_message"]

    # Above the fat-finger default (100 % of the day's equity): the broker's own check is shown.
    run(write_config(tmp_path, account="[accounts.paper.risk]\nmax_order_value = 1000000\n"), test)


def test_reversal_fails_when_the_exit_does_not_fill_in_time_and_sends_no_entry(tmp_path):
    config = write_config(
        tmp_path,
        subscription='exit_order_type = "limit"\nexit_fill_timeout = 0.2\n'
        "use_signal_order_type = false\n",
    )

    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        writes: list[str] = []
        h.journal.conn.set_trace_callback(
            lambda sql: writes.append(sql) if sql.startswith("UPDATE orders") else None
        )
        (sell,) = await h.send(
            {
                "ticker": "AAPL",
                "action": "sell",
                "quantity": 5,
                "signalPrice": 100,
                "limitPrice": 120,
            }
        )
        h.journal.conn.set_trace_callback(None)
        ((status, reason),) = h.deliveries(sell)
        assert status == "failed"
        assert "not filled within 0.2 s" in reason and "no entry was sent" in reason
        # ~20 polls found nothing new: the exit order was written once (accepted), not per poll.
        assert len(writes) == 1
        assert [o["role"] for o in h.journal.orders(signal_id=sell)] == ["exit"]
        assert h.position() == 5

    run(config, test)


def test_a_broker_lost_while_a_reversal_waits_for_its_exit_fails_it_without_the_entry(tmp_path):
    """Not an 'internal error' with the signal half done: the delivery fails with the reason,
    the exit stays open for the next lookup, and no entry goes out."""
    config = write_config(
        tmp_path,
        subscription='exit_order_type = "limit"\nexit_fill_timeout = 5\n'
        "use_signal_order_type = false\n",
    )

    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        reversal = {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 100}
        sending = asyncio.create_task(h.send(reversal | {"limitPrice": 120}))
        await asyncio.sleep(0.1)  # the exit rests at 120; the engine polls it
        h.engine.brokers["paper"].inject(Fault.DOWN, "connection reset")
        (sell,) = await asyncio.wait_for(sending, 5)
        ((status, reason),) = h.deliveries(sell)
        assert status == "failed"
        assert "lost paper while waiting for the exit order to fill" in reason
        assert "connection reset" in reason and "no entry was sent" in reason
        assert [o["role"] for o in h.journal.orders(signal_id=sell)] == ["exit"]

    run(config, test)


def test_a_late_stream_event_never_moves_a_journaled_order_back(tmp_path):
    """Streams and polls race: an 'accepted' event that arrives after the fill was journaled
    (or a smaller filled quantity) is ignored; a newer one is journaled."""

    async def test(h: Harness):
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        (order,) = h.journal.orders(signal_id=signal_id)
        assert order["status"] == "filled"
        heard = h.engine._listener("paper")  # what the engine hands a broker's stream
        heard(OrderState(order["client_order_id"], OrderStatus.ACCEPTED, ticker="AAPL"))
        heard(
            OrderState(
                order["client_order_id"],
                OrderStatus.FILLED,
                filled_quantity=D(2),
                average_fill_price=D(100),
                ticker="AAPL",
            )
        )
        await h.engine.drain()
        (order,) = h.journal.orders(signal_id=signal_id)
        assert (order["status"], D(order["filled_quantity"])) == ("filled", 5)
        assert h.position() == 5
        heard(
            OrderState(
                order["client_order_id"],
                OrderStatus.FILLED,
                filled_quantity=D(5),
                average_fill_price=D(100),
                broker_order_id="B-7",
                ticker="AAPL",
            )
        )
        await h.engine.drain()
        (order,) = h.journal.orders(signal_id=signal_id)
        assert order["broker_order_id"] == "B-7"  # news is journaled
        assert h.position() == 5  # and the fill is not counted twice

    run(write_config(tmp_path), test)


def test_strategy_without_subscriptions_is_processed_with_no_deliveries(tmp_path):
    config = write_config(tmp_path, subscription="enabled = false\n")

    async def test(h: Harness):
        (signal_id,) = await h.send({"ticker": "AAPL", "action": "buy"})
        assert h.journal.signal(signal_id)["status"] == "processed"
        assert h.deliveries(signal_id) == []

    run(config, test)


def test_start_resumes_an_acknowledged_signal_that_a_stop_interrupted(tmp_path):
    config = write_config(tmp_path)

    async def test(h: Harness):
        await h.engine.stop()
        signal_id, _ = h.journal_signal(
            {"ticker": "AAPL", "action": "buy", "quantity": 2, "signalPrice": 50}
        )
        h.engine = h.new_engine()
        await h.engine.start()  # finds the accepted signal and processes it
        await h.engine.drain()
        assert h.journal.signal(signal_id)["status"] == "processed"
        assert h.position() == 2

    run(config, test)


def test_restart_after_the_broker_filled_but_before_journaling_sends_nothing_twice(tmp_path):
    config = write_config(tmp_path)

    async def test(h: Harness):
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 4, "signalPrice": 10}
        )
        # Rewind our side of the wire to "plan journaled, order journaled as submitting": what a
        # kill -9 right after the broker's answer leaves behind.
        await h.crash_and_restart(sell, orders_submitting=True)
        paper_orders = h.journal.conn.execute("SELECT count(*) FROM paper_orders").fetchone()[0]
        assert paper_orders == 1
        assert (await h.engine.brokers["paper"].position("AAPL")).quantity == -4
        assert h.journal.orders(signal_id=sell)[0]["status"] == "filled"

    run(config, test)


def test_resumed_plan_does_not_cancel_the_order_it_placed(tmp_path):
    config = write_config(
        tmp_path, subscription='exit_order_type = "limit"\nuse_signal_order_type = false\n'
    )

    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        (exit_,) = await h.send(
            {"ticker": "AAPL", "action": "exit", "signalPrice": 100, "limitPrice": 120}
        )
        assert [o["status"] for o in h.journal.orders(signal_id=exit_)] == ["accepted"]
        await h.crash_and_restart(exit_)
        assert [o["status"] for o in h.journal.orders(signal_id=exit_)] == ["accepted"]
        assert h.deliveries(exit_)[0][0] == "submitted"
        assert len(await h.engine.brokers["paper"].open_orders("AAPL")) == 1

    run(config, test)


def test_a_leg_the_broker_cancels_fails_the_delivery(tmp_path):
    config = write_config(tmp_path, subscription='time_in_force = "ioc"\n')

    async def test(h: Harness):
        (buy,) = await h.send(
            {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": 1,
                "signalPrice": 100,
                "orderType": "limit",
                "limitPrice": 90,
            }
        )
        ((status, reason),) = h.deliveries(buy)
        assert status == "failed" and "entry order was canceled" in reason

    run(config, test)


def test_manual_approval_plans_again_and_reports_the_change(tmp_path):

    from tradepipe.errors import UsageError

    config = write_config(tmp_path, subscription="auto_submit = false\n")

    async def test(h: Harness):
        (first,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 10}
        )
        assert h.deliveries(first) == [
            ("pending_approval", "enter long 5 (buy 5 AAPL); waiting for approval")
        ]
        assert h.position() == 0  # nothing sent before approval
        (delivery,) = h.journal.deliveries_with_status("pending_approval")
        # Meanwhile the account went short 2 (another approved signal).
        (second,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 2, "signalPrice": 10}
        )
        (other,) = [
            d
            for d in h.journal.deliveries_with_status("pending_approval")
            if d["signal_id"] == second
        ]
        await h.engine.review(other["id"], approve=True)
        assert h.position() == -2
        result = await h.engine.review(delivery["id"], approve=True)
        assert result["status"] == "submitted" and result["changed"] is True
        assert result["plan_at_signal"] == "enter long 5 (buy 5 AAPL)"
        assert result["plan_now"] == "exit short 2, wait for the fill, then buy 5"
        assert h.position() == 5
        with pytest.raises(UsageError, match="is submitted, not waiting for approval"):
            await h.engine.review(delivery["id"], approve=True)

    run(config, test)


def test_approval_and_replay_trade_at_the_mark_of_the_moment_not_the_signals_price(tmp_path):
    """The signal's price moved the mark when it came in; an approval (or a replay) later must
    plan and fill at the mark of that moment, and leave it there (it was reset to the old
    price, and the order filled at it)."""
    from tradepipe.daemon.serve import Actions

    config = write_config(tmp_path, subscription="auto_submit = false\n")

    async def test(h: Harness):
        buy = BRACKET | {"signalPrice": 100}  # take-profit +10 %, stop-loss −5
        (signal_id,) = await h.send(buy)
        (delivery,) = h.journal.deliveries_with_status("pending_approval")
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(105))
        result = await h.engine.review(delivery["id"], approve=True)
        assert result["status"] == "submitted"
        entry, take_profit, stop_loss = h.journal.orders(signal_id=signal_id)[::-1]
        assert (entry["role"], entry["status"]) == ("entry", "filled")
        assert [f["price"] for f in h.journal.fills(account="paper")] == ["105"]
        assert (take_profit["limit_price"], stop_loss["stop_price"]) == ("115.5", "100")
        assert h.journal.paper_mark("paper", "AAPL") == D(105)
        # A replay sent at another mark fills there too, and leaves the mark alone.
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(107))
        await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 107})
        (exit_,) = h.journal.deliveries_with_status("pending_approval")
        await h.engine.review(exit_["id"], approve=True)
        assert h.position() == 0
        replayed = h.engine.replay(signal_id)
        await h.engine.drain()
        assert h.journal.paper_mark("paper", "AAPL") == D(107)
        ((status, _),) = h.deliveries(replayed)
        assert status == "pending_approval"
        (again,) = h.journal.deliveries_with_status("pending_approval")
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(108))
        await h.engine.review(again["id"], approve=True)
        assert h.journal.fills(account="paper")[0]["price"] == "108"
        assert h.journal.paper_mark("paper", "AAPL") == D(108)

    run(config, test)


def test_a_replay_a_restart_resumes_does_not_move_the_mark_either(tmp_path):
    from tradepipe.daemon.serve import Actions

    async def test(h: Harness):
        (buy,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 100}
        )
        await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 100})
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(104))
        replayed = h.engine.replay(buy)
        await h.engine.drain()
        assert h.journal.fills(account="paper")[0]["price"] == "104"
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(103))
        await h.crash_and_restart(replayed)
        assert h.journal.paper_mark("paper", "AAPL") == D(103)
        assert h.position() == 1

    run(write_config(tmp_path), test)


def test_manual_rejection_sends_nothing(tmp_path):
    config = write_config(tmp_path, subscription="auto_submit = false\n")

    async def test(h: Harness):
        (signal_id,) = await h.send({"ticker": "AAPL", "action": "buy", "signalPrice": 10})
        (delivery,) = h.journal.deliveries_with_status("pending_approval")
        result = await h.engine.review(delivery["id"], approve=False)
        assert result["status"] == "rejected"
        assert h.deliveries(signal_id) == [("rejected", "rejected by the operator")]
        assert h.journal.orders() == []

    run(config, test)


def test_bracket_take_profit_fills_and_cancels_the_stop(tmp_path):
    from tradepipe.daemon.serve import Actions

    async def test(h: Harness):
        (buy,) = await h.send(BRACKET)
        ((status, reason),) = h.deliveries(buy)
        assert status == "submitted"
        assert reason == (
            "enter long 5 (buy 5 AAPL) with take-profit limit at 110 and stop-loss stop at 95"
        )
        legs = {o["role"]: o for o in h.journal.orders(signal_id=buy)}
        assert (legs["take_profit"]["limit_price"], legs["stop_loss"]["stop_price"]) == (
            "110",
            "95",
        )
        assert legs["take_profit"]["parent_id"] == legs["entry"]["id"]
        assert {legs["take_profit"]["status"], legs["stop_loss"]["status"]} == {"accepted"}
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(111))
        legs = {o["role"]: o for o in h.journal.orders(signal_id=buy)}
        assert legs["take_profit"]["status"] == "filled"
        assert legs["stop_loss"]["status"] == "canceled"
        assert "one-cancels-other" in legs["stop_loss"]["broker_message"]
        assert h.position() == 0

    run(write_config(tmp_path), test)


def test_bracket_from_subscription_defaults_on_the_wrong_side_is_rejected(tmp_path):
    config = write_config(tmp_path, subscription="take_profit = { limit_price = 90 }\n")

    async def test(h: Harness):
        (buy,) = await h.send({"ticker": "AAPL", "action": "buy", "signalPrice": 100})
        assert h.deliveries(buy) == [
            ("rejected", "take-profit 90 must be above the entry price 100")
        ]
        assert h.journal.orders() == []

    run(config, test)


def test_exit_cancels_the_resting_bracket_first(tmp_path):
    async def test(h: Harness):
        await h.send(
            {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": 5,
                "signalPrice": 100,
                "stopLoss": {"percent": 2},
            }
        )
        await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 101})
        assert h.position() == 0
        statuses = {o["role"]: o["status"] for o in h.journal.orders()}
        assert statuses["stop_loss"] == "canceled" and statuses["exit"] == "filled"
        assert await h.engine.brokers["paper"].open_orders("AAPL") == []

    run(write_config(tmp_path), test)


def test_a_stop_between_planning_and_parking_never_sends_without_approval(tmp_path):
    config = write_config(tmp_path, subscription="auto_submit = false\n")

    async def test(h: Harness):
        (buy,) = await h.send({"ticker": "AAPL", "action": "buy", "quantity": 2, "signalPrice": 10})
        # What a kill -9 after the plan was journaled, before the delivery was parked, leaves:
        await h.crash_and_restart(buy)
        assert h.deliveries(buy)[0][0] == "pending_approval"
        assert h.journal.orders() == [] and h.position() == 0

    run(config, test)


def test_a_bracket_the_broker_refuses_is_journaled_rejected_leg_by_leg(tmp_path):
    async def test(h: Harness):
        h.engine.brokers["paper"].inject(Fault.REJECT, "trailing stops are not allowed here")
        (buy,) = await h.send(
            {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": 1,
                "signalPrice": 100,
                "stopLoss": {"type": "trailing_stop", "trailPercent": 2},
            }
        )
        ((status, reason),) = h.deliveries(buy)
        assert status == "rejected" and "trailing stops are not allowed here" in reason
        legs = {o["role"]: o["status"] for o in h.journal.orders(signal_id=buy)}
        assert legs == {"entry": "rejected", "stop_loss": "rejected"}
        assert h.position() == 0

    run(write_config(tmp_path), test)


def test_breakeven_moves_the_bracket_stop_and_keeps_it_one_cancels_other(tmp_path):
    from tradepipe.daemon.serve import Actions

    async def test(h: Harness):
        (buy,) = await h.send(BRACKET)
        (be,) = await h.send(
            {"ticker": "AAPL", "action": "breakeven", "signalPrice": 104, "breakevenOffset": 0.5}
        )
        assert h.deliveries(be) == [
            (
                "submitted",
                "move the stop of the long 5 from 95 to breakeven 100.5 (average 100, offset 0.5)",
            )
        ]
        (moved,) = h.journal.orders(signal_id=be)
        old = {o["role"]: o for o in h.journal.orders(signal_id=buy)}
        assert (moved["role"], moved["stop_price"], moved["status"]) == (
            "stop_loss",
            "100.5",
            "accepted",
        )
        assert moved["parent_id"] == old["entry"]["id"]  # still in the entry's bracket
        assert old["stop_loss"]["status"] == "canceled"
        assert old["stop_loss"]["broker_message"] == f"replaced by {moved['client_order_id']}"
        # The take-profit fills: the moved stop goes with it (one-cancels-other).
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(111))
        (moved,) = h.journal.orders(signal_id=be)
        assert moved["status"] == "canceled" and "one-cancels-other" in moved["broker_message"]
        assert h.position() == 0

    run(write_config(tmp_path), test)


def test_a_moved_stop_fills_at_breakeven_and_cancels_the_take_profit(tmp_path):
    from tradepipe.daemon.serve import Actions

    async def test(h: Harness):
        (buy,) = await h.send(BRACKET)
        (be,) = await h.send({"ticker": "AAPL", "action": "breakeven", "signalPrice": 103})
        await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D("99.9"))
        (moved,) = h.journal.orders(signal_id=be)
        assert (moved["status"], moved["average_fill_price"]) == ("filled", "99.9")
        old = {o["role"]: o for o in h.journal.orders(signal_id=buy)}
        assert old["take_profit"]["status"] == "canceled"
        assert h.position() == 0

    run(write_config(tmp_path), test)


def test_breakeven_resumed_after_a_crash_moves_the_stop_once(tmp_path):
    async def test(h: Harness):
        await h.send(BRACKET)
        (be,) = await h.send({"ticker": "AAPL", "action": "breakeven", "signalPrice": 103})
        await h.crash_and_restart(be, orders_submitting=True)
        assert h.deliveries(be)[0][0] == "submitted"
        (moved,) = h.journal.orders(signal_id=be)
        assert moved["status"] == "accepted"
        live = await h.engine.brokers["paper"].open_orders("AAPL")
        assert sorted((o.order_type, o.stop_price or o.limit_price) for o in live) == [
            ("limit", D(110)),
            ("stop", D(100)),
        ]

    run(write_config(tmp_path), test)


async def restart(h: Harness) -> None:
    await h.engine.stop()
    h.engine = h.new_engine()
    await h.engine.start()
    await h.engine.drain()


def test_an_accepted_order_whose_answer_was_lost_is_settled_by_lookup_not_resent(tmp_path):
    async def test(h: Harness):
        h.engine.brokers["paper"].inject(Fault.TIMEOUT, "read timeout")
        (buy,) = await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 10})
        ((status, reason),) = h.deliveries(buy)
        assert status == "failed" and "its state is unknown" in reason
        (order,) = h.journal.orders(signal_id=buy)
        assert order["status"] == "unknown" and h.position() == 0  # the journal does not know
        await restart(h)  # start settles it by asking the broker about its id
        (order,) = h.journal.orders(signal_id=buy)
        assert (order["status"], order["filled_quantity"]) == ("filled", "5")
        assert h.position() == 5
        paper = h.journal.conn.execute("SELECT count(*) FROM paper_orders").fetchone()[0]
        assert paper == 1  # never sent a second time

    run(write_config(tmp_path), test)


def test_an_order_the_broker_never_got_is_settled_as_not_sent_after_a_grace(tmp_path):
    async def test(h: Harness):
        h.engine.brokers["paper"].inject(Fault.DROP, "connection reset")
        (buy,) = await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 10})
        await restart(h)
        (order,) = h.journal.orders(signal_id=buy)
        assert order["status"] == "unknown"  # too soon to believe "no such order"
        h.clock.advance(61)
        (later,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 10}
        )
        (order,) = h.journal.orders(signal_id=buy)
        assert order["status"] == "canceled"
        assert order["broker_message"].startswith("never reached the broker")
        assert h.deliveries(later)[0][0] == "submitted" and h.position() == 1

    run(write_config(tmp_path), test)


def test_a_paper_quote_waits_for_the_signals_queued_on_its_ticker(tmp_path):
    from tradepipe.daemon.serve import Actions

    async def test(h: Harness):
        limit = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        signal_id, signal = h.journal_signal(limit | {"orderType": "limit", "limitPrice": 99})
        h.engine.enqueue(signal_id, "trend", signal)  # queued, not yet delivered
        moved = await Actions(h.config, h.engine).paper_quote("paper", "AAPL", D(98))
        # The quote ran after the delivery placed its limit order, and filled it.
        assert len(moved["filled"]) == 1 and h.position() == 5

    run(write_config(tmp_path), test)


def test_a_signal_whose_deliveries_cannot_be_journaled_is_kept_for_the_next_start(tmp_path):
    second = (
        '\n[accounts.other]\nbroker = "paper"\n'
        '\n[subscriptions.second]\nstrategy = "trend"\naccount = "other"\n'
    )
    config = write_config(tmp_path, extra=second)

    async def test(h: Harness):
        h.journal.conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.subscription = 'second'"
            " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
        (buy,) = await h.send({"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 9})
        # All or nothing: no delivery ran, the signal is still waiting.
        assert h.deliveries(buy) == [] and h.position() == 0
        assert h.journal.signal(buy)["status"] == "accepted"
        health = h.engine.health()  # and it says so until then
        assert health["status"] == "degraded"
        assert health["stalled_signals"][0]["signal_id"] == buy
        assert "disk trouble" in health["stalled_signals"][0]["reason"]
        h.journal.conn.execute("DROP TRIGGER refuse")
        await restart(h)
        assert [d[0] for d in h.deliveries(buy)] == ["submitted", "submitted"]
        assert h.journal.signal(buy)["status"] == "processed"
        assert h.position() == 1 and h.journal.position("other", "AAPL")[0] == 1

    run(config, test)


def test_an_operator_who_gives_up_waiting_does_not_stop_the_lane(tmp_path):
    """A flatten or approval whose caller is cancelled mid-step (a timeout, a dropped CLI
    connection) still finishes in the lane, and the signals queued behind it are processed."""

    async def test(h: Harness):
        release = asyncio.Event()
        finished: list[str] = []

        async def slow_step() -> str:
            await release.wait()
            finished.append("done")
            return "done"

        waiting = asyncio.create_task(h.engine.in_lane("paper", "AAPL", slow_step))
        await asyncio.sleep(0.05)
        waiting.cancel()
        release.set()
        (buy,) = await asyncio.wait_for(
            h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}), 5
        )
        assert h.deliveries(buy)[0][0] == "submitted" and h.position() == 5
        assert finished == ["done"]  # the step itself ran to its end, in the lane

    run(write_config(tmp_path), test)


class ForgetfulPaper(PaperBroker):
    """The real paper broker, answering a filled order as IB does after a restart when it no
    longer lists it: partly filled, by fills that in fact cover it."""

    def _forget(self, state: OrderState | None) -> OrderState | None:
        if state is not None and state.status is OrderStatus.FILLED:
            return dataclasses.replace(state, status=OrderStatus.PARTIALLY_FILLED)
        return state

    async def get_order(self, client_order_id: str, *, ticker: str | None = None):
        return self._forget(await super().get_order(client_order_id, ticker=ticker))

    async def submit_bracket(self, entry, children) -> list[OrderState]:
        return [self._forget(s) for s in await super().submit_bracket(entry, children)]


class ForgetfulHarness(Harness):
    def new_engine(self) -> Engine:
        engine = super().new_engine()
        engine.brokers = {
            "paper": ForgetfulPaper("paper", self.journal, cash=D(100000), clock=self.clock)
        }
        return engine


def test_a_reversal_whose_exit_fills_are_answered_partial_still_sends_its_entry(tmp_path):
    """The exit's fills cover what was sent: it is filled, so the entry goes at once (read
    against the journaled quantity), rather than waiting out exit_fill_timeout and failing."""

    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 101}
        )
        assert h.deliveries(sell)[0][0] == "submitted", h.deliveries(sell)
        assert h.position() == -5
        assert {o["role"]: o["status"] for o in h.journal.orders(signal_id=sell)} == {
            "exit": "filled",
            "entry": "filled",
        }

    run(write_config(tmp_path, subscription="exit_fill_timeout = 1\n"), test, ForgetfulHarness)


# ---- equity snapshots (SPEC §13)


async def _snapshots(h: Harness, reason: str, count: int = 1) -> list:
    """The account's snapshots with `reason`, once the equity task took `count` of them."""
    for _ in range(200):
        rows = [r for r in h.journal.equity_snapshots("paper") if r.reason == reason]
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.01)
    return rows


def test_a_paper_fill_leaves_an_equity_snapshot_of_the_paper_equity(tmp_path):
    async def test(h: Harness):
        (start,) = await _snapshots(h, "start")  # taken after connect
        assert (start.equity, start.cash) == (Decimal(100000), Decimal(100000))
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        assert h.position() == 5
        (after_fill,) = await _snapshots(h, "fill")
        summary = await h.engine.brokers["paper"].account()
        assert (after_fill.equity, after_fill.cash) == (summary.equity, summary.cash)
        assert after_fill.cash == Decimal(100000) - 5 * 100
        assert after_fill.taken_at == h.clock()
        # The figures the limits read come from these rows.
        assert h.journal.high_water_mark("paper") == max(start.equity, after_fill.equity)

    run(write_config(tmp_path), test)


def test_the_equity_task_snapshots_every_account_each_interval(tmp_path):
    async def test(h: Harness):
        await asyncio.sleep(0)  # the task starts and sets its 60 s timer
        h.engine.equity.interval = 0.02
        h.engine.equity._timer.cancel()  # the 60 s one started with the engine
        h.engine.equity._round()
        assert len(await _snapshots(h, "periodic", count=2)) >= 2

    run(write_config(tmp_path), test)


class _AccountDown(PaperBroker):
    async def account(self):
        raise RuntimeError("account endpoint down")


class _FailingAccountHarness(Harness):
    def new_engine(self) -> Engine:
        brokers = make_brokers(self.config, self.journal, self.clock)
        paper = brokers["paper"]
        paper.__class__ = _AccountDown  # the same paper books; only account() fails
        return Engine(self.config, self.journal, brokers, self.clock, fill_poll_interval=0.01)


def test_a_failing_account_call_does_not_fail_the_delivery(tmp_path, caplog):
    async def test(h: Harness):
        (buy,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        for _ in range(20):  # let the equity task try (and fail)
            await asyncio.sleep(0.01)
        assert h.position() == 5
        # The fat-finger default is a share of the equity nobody could read: said, not hidden.
        assert h.deliveries(buy) == [
            (
                "submitted",
                "enter long 5 (buy 5 AAPL); max_order_value not checked: the equity is unknown",
            )
        ]
        assert h.journal.equity_snapshots("paper") == []
        # The engine still serves: a second signal goes through too.
        await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 101})
        assert h.position() == 0

    run(write_config(tmp_path), test, _FailingAccountHarness)
    assert "equity snapshot of paper (fill) failed: account endpoint down" in caplog.text


def test_a_continuous_future_and_its_dated_contract_share_one_lane(tmp_path):
    """`ES1!` becomes `ESZ2026` at a broker that maps it: an alert naming either must queue
    behind the other, or two deliveries could plan against one position at once."""

    async def test(h: Harness):
        await h.send(
            {"ticker": "ESZ2026", "action": "buy", "quantity": 1, "signalPrice": 5000},
            {"ticker": "ES1!", "action": "buy", "quantity": 1, "signalPrice": 5000},
            {"ticker": "AAPL 261218C00200000", "action": "buy", "quantity": 1, "signalPrice": 2},
            {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 100},
        )
        assert sorted(h.engine.lanes.tickers("paper")) == ["AAPL 261218C00200000", "ESZ2026"]

    run(write_config(tmp_path), test)
