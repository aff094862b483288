"""SPEC §13's schedules in the engine, with the real paper broker, a real journal file and a
clock the test moves: delay, cancel_after / cancelAfter and flatten_at, across restarts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal as D

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tradepipe.brokers.paper.broker import Fault
from tradepipe.config import load_config

LIMIT = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": 5,
    "signalPrice": 100,
    "orderType": "limit",
    "limitPrice": 90,
}
MARKET = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}


def schedules(h: Harness, kind: str | None = None) -> list[dict]:
    return h.journal.schedules(kind=kind)


async def settle(h: Harness) -> None:
    """Run what is due at the test's clock, and wait for what the timer started."""
    await h.engine.scheduler.run_due()
    await h.engine.scheduler.idle()
    await h.engine.drain()


async def restart(h: Harness, *, after: float = 0) -> None:
    """Stop the engine, let `after` seconds pass while it is down, start a new one."""
    await h.engine.stop()
    h.clock.advance(after)
    h.engine = h.new_engine()
    await h.engine.start()
    await settle(h)


def paper_fills(h: Harness) -> int:
    """The fills at the (paper) broker: one per order sent and filled."""
    return h.journal.conn.execute("SELECT count(*) FROM paper_fills").fetchone()[0]


def orders(h: Harness) -> list[tuple[str, str]]:
    return [(o["role"], o["status"]) for o in h.journal.orders()]


# -- cancel_after / cancelAfter -------------------------------------------------------------------


def test_cancel_after_cancels_a_limit_order_left_unfilled(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT)
        assert orders(h) == [("entry", "accepted")]
        (item,) = schedules(h)
        (order,) = h.journal.orders()
        assert (item["kind"], item["client_order_id"], item["status"]) == (
            "cancel_after",
            order["client_order_id"],
            "pending",
        )
        assert datetime.fromisoformat(item["due_at"]) == h.clock() + timedelta(seconds=30)
        h.clock.advance(29)
        await settle(h)  # not yet
        assert orders(h) == [("entry", "accepted")]
        h.clock.advance(1)
        await settle(h)
        assert orders(h) == [("entry", "canceled")]
        assert await h.engine.brokers["paper"].open_orders() == []
        (item,) = schedules(h)
        assert (item["status"], item["reason"]) == (
            "done",
            "canceled: unfilled after 30 s (cancel_after)",
        )
        events = [json.loads(e["detail"]) for e in h.journal.events() if e["kind"] == "schedule"]
        assert [e["status"] for e in events] == ["pending", "done"]

    run(write_config(tmp_path, subscription="cancel_after = 30\n"), test)


def test_the_signals_cancel_after_wins_unless_switched_off(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT | {"cancelAfter": 5})
        (item,) = schedules(h)
        assert datetime.fromisoformat(item["due_at"]) == h.clock() + timedelta(seconds=5)
        h.clock.advance(5)
        await settle(h)
        (item,) = schedules(h)
        assert item["reason"] == "canceled: unfilled after 5 s (cancelAfter)"
        assert orders(h) == [("entry", "canceled")]

    run(write_config(tmp_path, subscription="cancel_after = 30\n"), test)


def test_cancel_after_switched_off_for_the_signal_and_not_set_schedules_nothing(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT | {"cancelAfter": 5})
        assert schedules(h) == []
        assert orders(h) == [("entry", "accepted")]

    run(write_config(tmp_path, subscription="use_signal_cancel_after = false\n"), test)


def test_an_order_filled_before_its_cancel_after_is_done_with_nothing_sent(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT | {"cancelAfter": 30})
        broker = h.engine.brokers["paper"]
        for state in await broker.observe_price("AAPL", D(89)):  # the limit fills
            h.engine.record_state("paper", "AAPL", state)
        assert orders(h) == [("entry", "filled")]
        h.clock.advance(30)
        await settle(h)
        (item,) = schedules(h)
        assert (item["status"], item["reason"]) == (
            "done",
            "filled before its cancel after 30 s (cancelAfter): nothing sent",
        )
        assert h.position() == 5

    run(write_config(tmp_path), test)


def test_a_market_order_that_fills_at_once_schedules_no_cancel(tmp_path):
    async def test(h: Harness):
        await h.send(MARKET | {"cancelAfter": 30})
        assert schedules(h) == [] and h.position() == 5

    run(write_config(tmp_path), test)


def test_cancel_after_survives_a_restart(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT | {"cancelAfter": 30})
        await restart(h, after=45)  # due while stopped: a late cancel still cancels
        assert orders(h) == [("entry", "canceled")]
        (item,) = schedules(h)
        assert item["reason"] == "canceled: unfilled after 30 s (cancelAfter)"

    run(write_config(tmp_path), test)


# -- delay ----------------------------------------------------------------------------------------


def test_a_delayed_delivery_waits_then_runs_once_in_its_lane(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        due = (h.clock() + timedelta(seconds=30)).strftime("%H:%M:%S")
        assert h.deliveries(signal) == [
            ("delayed", f"waits for its delay of 30 s: due at {due} UTC")
        ]
        assert h.journal.signal(signal)["status"] == "processed"  # the answer is final
        (delivery,) = h.journal.deliveries_for([signal])
        assert "delay 30 ← signal" in json.loads(delivery["provenance"])
        assert orders(h) == []
        h.clock.advance(30)
        await settle(h)
        assert h.deliveries(signal) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        assert orders(h) == [("entry", "filled")] and h.position() == 5
        (item,) = schedules(h)
        assert (item["status"], item["reason"]) == (
            "done",
            "delivery submitted: enter long 5 (buy 5 AAPL)",
        )
        await settle(h)  # nothing runs twice
        assert len(h.journal.orders()) == 1

    run(write_config(tmp_path), test)


def test_a_delay_the_subscription_does_not_honour_runs_at_once(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        assert h.deliveries(signal) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        assert schedules(h) == []

    run(write_config(tmp_path, subscription="use_signal_delay = false\n"), test)


def test_a_delay_across_a_restart_sends_exactly_one_order(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        await restart(h, after=10)  # still waiting
        assert h.deliveries(signal)[0][0] == "delayed" and orders(h) == []
        h.clock.advance(20)
        await settle(h)
        await restart(h, after=5)
        assert h.deliveries(signal) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        assert orders(h) == [("entry", "filled")]
        assert len(await h.engine.brokers["paper"].open_orders()) == 0
        assert paper_fills(h) == 1 and h.position() == 5

    run(write_config(tmp_path), test)


def test_a_delay_due_while_stopped_runs_at_start_within_the_grace(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        await restart(h, after=30 + 45)  # 45 s late: still on time
        assert h.deliveries(signal)[0][0] == "submitted"

    run(write_config(tmp_path), test)


def test_a_delay_missed_by_more_than_60_s_is_rejected_never_sent_late(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        await restart(h, after=30 + 75)
        why = "missed its time by 75 s (more than 60 s late)"
        assert h.deliveries(signal) == [("rejected", f"{why}; nothing sent")]
        (item,) = schedules(h)
        assert (item["status"], item["reason"]) == ("missed", why)
        assert orders(h) == [] and h.position() == 0

    run(write_config(tmp_path), test)


def test_a_delayed_delivery_interrupted_while_sending_is_finished_never_sent_twice(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(MARKET | {"delay": 30})
        h.clock.advance(30)
        await settle(h)
        # What a kill -9 between the order and its journaled outcome leaves: planned, pending.
        with h.journal.transaction():
            h.journal.conn.execute("UPDATE deliveries SET status = 'planned'")
            h.journal.conn.execute("UPDATE schedules SET status = 'pending', reason = NULL")
        await restart(h, after=600)  # late, but its order was sent: finished, not rejected
        assert h.deliveries(signal)[0][0] == "submitted"
        assert paper_fills(h) == 1 and h.position() == 5

    run(write_config(tmp_path), test)


# -- flatten_at -----------------------------------------------------------------------------------

# FixedClock starts on Friday 2026-11-20 at 15:00 UTC.
FLATTEN_1530 = 'flatten_at = { time = "15:30", days = "mon-sun", tz = "UTC" }\n'
OTHER = """
[strategies.other]
token = "tok_Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"

[subscriptions.other-paper]
strategy = "other"
account = "paper"
"""


def test_flatten_at_closes_the_subscriptions_positions_and_arms_the_next_day(tmp_path):
    async def test(h: Harness):
        (item,) = schedules(h, "flatten_at")
        assert (item["subscription"], item["due_at"]) == (
            "trend-paper",
            "2026-11-20T15:30:00+00:00",
        )
        await h.send(MARKET)
        # Another subscription's ticker on the same account is not this one's to close.
        msft = {"ticker": "MSFT", "action": "buy", "quantity": 2, "signalPrice": 50}
        signal_id, signal = h.journal_signal(msft)
        h.engine.enqueue(signal_id, "other", signal)
        await h.engine.drain()
        assert h.position("MSFT") == 2
        h.clock.advance(30 * 60)
        await settle(h)
        assert h.position() == 0 and h.position("MSFT") == 2
        done, following = schedules(h, "flatten_at")
        assert (done["status"], done["reason"]) == (
            "done",
            "flattened paper: AAPL: sell 5 (filled)",
        )
        assert (following["status"], following["due_at"]) == (
            "pending",
            "2026-11-21T15:30:00+00:00",
        )
        operator = [json.loads(e["detail"]) for e in h.journal.events() if e["kind"] == "operator"]
        assert [e["action"] for e in operator] == ["flatten_at"]

    run(write_config(tmp_path, subscription=FLATTEN_1530, extra=OTHER), test)


def test_a_flatten_at_missed_while_stopped_is_journaled_missed_not_run_late(tmp_path):
    async def test(h: Harness):
        await h.send(MARKET)
        await restart(h, after=30 * 60 + 90)  # stopped through 15:30 and 90 s past it
        assert h.position() == 5
        missed, following = schedules(h, "flatten_at")
        assert (missed["status"], missed["reason"]) == (
            "missed",
            "missed its time by 90 s (more than 60 s late): not run late",
        )
        assert following["due_at"] == "2026-11-21T15:30:00+00:00"
        # Stopped through three more firings: each is journaled missed, the next one armed.
        await restart(h, after=3 * 24 * 3600)
        rows = schedules(h, "flatten_at")
        assert [r["status"] for r in rows] == ["missed"] * 4 + ["pending"]
        assert rows[-1]["due_at"] == "2026-11-24T15:30:00+00:00"
        assert h.position() == 5

    run(write_config(tmp_path, subscription=FLATTEN_1530), test)


def test_a_reload_that_changes_flatten_at_arms_the_new_time(tmp_path):
    async def test(h: Harness):
        assert len(schedules(h, "flatten_at")) == 1
        changed = write_config(
            tmp_path, subscription='flatten_at = { time = "16:00", days = "mon-fri", tz = "UTC" }\n'
        )
        h.engine.reload.use_config(load_config(changed), h.engine.brokers)
        old, new = schedules(h, "flatten_at")
        assert (old["status"], old["reason"]) == ("canceled", "flatten_at changed by a reload")
        assert (new["status"], new["due_at"]) == ("pending", "2026-11-20T16:00:00+00:00")
        h.engine.reload.use_config(load_config(write_config(tmp_path)), h.engine.brokers)
        assert [r["status"] for r in schedules(h, "flatten_at")] == ["canceled", "canceled"]

    run(write_config(tmp_path, subscription=FLATTEN_1530), test)


def test_a_flatten_at_the_broker_cuts_off_is_missed_and_never_sent_twice(tmp_path):
    async def test(h: Harness):
        await h.send(MARKET)
        h.engine.brokers["paper"].inject(Fault.DROP, "connection reset")
        h.clock.advance(30 * 60)
        await settle(h)
        missed, following = schedules(h, "flatten_at")
        assert missed["status"] == "missed"
        assert missed["reason"].startswith("failed at the broker: ")
        assert missed["reason"].endswith("not retried, check account paper")
        h.clock.advance(15)
        await settle(h)  # nothing tried again
        (close,) = [o for o in h.journal.orders() if o["signal_id"] is None]
        assert close["status"] == "unknown" and following["status"] == "pending"
        assert h.position() == 5

    run(write_config(tmp_path, subscription=FLATTEN_1530), test)


def test_a_cancel_the_broker_cannot_reach_is_tried_again(tmp_path):
    async def test(h: Harness):
        await h.send(LIMIT | {"cancelAfter": 30})
        broker = h.engine.brokers["paper"]
        broker.inject(Fault.DOWN, "connection reset")
        h.clock.advance(30)
        await settle(h)
        (item,) = schedules(h)
        assert item["status"] == "pending" and orders(h) == [("entry", "accepted")]
        broker.heal()
        h.clock.advance(10)  # the retry's wait
        await settle(h)
        (item,) = schedules(h)
        assert (item["status"], orders(h)) == ("done", [("entry", "canceled")])

    run(write_config(tmp_path), test)
