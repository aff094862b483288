"""SPEC §13's limits in the engine: a real engine, journal and paper broker (tests/test_engine.py's
Harness), signals through the pre-trade check, trips from real equity snapshots and orders sent.
The pure decisions are tabled in test_limits.py and test_tally.py; the same rules end to end
through `tradepipe serve` in test_risk_e2e.py."""

from __future__ import annotations

from decimal import Decimal as D

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.engine.operator import Operator
from tradepipe.journal.equity import PERIODIC


def buy(quantity, price=100, ticker="AAPL", **extra):
    return {"ticker": ticker, "action": "buy", "quantity": quantity, "signalPrice": price, **extra}


def sell(quantity, price=100, ticker="AAPL", **extra):
    return {
        "ticker": ticker,
        "action": "sell",
        "quantity": quantity,
        "signalPrice": price,
        **extra,
    }


def exit_(price, ticker="AAPL"):
    return {"ticker": ticker, "action": "exit", "signalPrice": price}


def risk(lines: str) -> str:
    return "[accounts.paper.risk]\n" + lines


def only(h: Harness, signal_id: int) -> tuple[str, str]:
    (delivery,) = h.deliveries(signal_id)
    return delivery


def test_the_fat_finger_default_rejects_an_order_worth_more_than_the_days_equity(tmp_path):
    async def test(h: Harness):
        (big,) = await h.send(buy(1001))  # 100,100 > 100 % of 100,000
        assert only(h, big) == (
            "rejected",
            "max_order_value 100% = 100,000: this order is worth 100,100 (1001 × 100)",
        )
        assert h.journal.orders(signal_id=big) == []  # the broker never heard of it
        (fits,) = await h.send(buy(1000))
        assert only(h, fits)[0] == "submitted"

    run(write_config(tmp_path), test)


def test_gross_exposure_reduces_an_entry_and_its_bracket_to_what_fits(tmp_path):
    config = write_config(tmp_path, account=risk("max_gross_exposure = 1000\n"))

    async def test(h: Harness):
        await h.send(buy(6, ticker="MSFT"))  # 600 of 1,000
        (signal_id,) = await h.send(buy(10, takeProfit={"percent": 10}, stopLoss={"amount": 5}))
        status, reason = only(h, signal_id)
        assert status == "submitted"
        assert "max_gross_exposure 1,000: this entry would bring it to 1,600" in reason
        assert "reduced from 10 to 4" in reason
        quantities = {o["role"]: D(o["quantity"]) for o in h.journal.orders(signal_id=signal_id)}
        assert quantities == {"entry": 4, "take_profit": 4, "stop_loss": 4}
        (full,) = await h.send(buy(1, ticker="NVDA"))
        assert only(h, full) == (
            "rejected",
            "max_gross_exposure 1,000: this entry would bring it to 1,100"
            " (it is at 1,000: not one lot fits)",
        )

    run(config, test)


def test_open_positions_limit_rejects_a_new_ticker_but_not_an_add(tmp_path):
    config = write_config(
        tmp_path, account=risk("max_open_positions = 1\n"), subscription="allow_add = true\n"
    )

    async def test(h: Harness):
        await h.send(buy(5))
        (other,) = await h.send(buy(5, ticker="MSFT"))
        assert only(h, other) == (
            "rejected",
            "max_open_positions 1: this entry into MSFT would bring it to 2 (AAPL are open)",
        )
        (add,) = await h.send(buy(5))
        assert only(h, add)[0] == "submitted"
        assert h.position() == 10

    run(config, test)


def test_a_reversal_denied_its_entry_keeps_its_exit(tmp_path):
    config = write_config(tmp_path, subscription="max_trades_per_day = 1\n")

    async def test(h: Harness):
        await h.send(buy(5))
        (reversal,) = await h.send(sell(8, 101))
        status, reason = only(h, reversal)
        assert status == "submitted"
        assert "entry dropped: max_trades_per_day 1: 1 trades today already" in reason
        assert h.position() == 0  # the exit went, the short did not
        (again,) = await h.send(buy(1))
        assert only(h, again) == ("rejected", "max_trades_per_day 1: 1 trades today already")
        h.clock.advance(24 * 3600)  # the next trading day (day_starts_at 00:00 UTC)
        (tomorrow,) = await h.send(buy(1))
        assert only(h, tomorrow)[0] == "submitted"

    run(config, test)


def test_the_order_rate_trips_the_account_and_denies_entries(tmp_path):
    config = write_config(tmp_path, account=risk("max_orders_per_minute = 3\n"))

    async def test(h: Harness):
        for ticker in ("A", "B", "C"):
            await h.send(buy(1, ticker=ticker))
        row = h.engine.states.rows[Scope.account("paper")]
        assert (row.state.state, row.limit, row.source) == (
            TradingState.REDUCE_ONLY,
            "max_orders_per_minute",
            "trip",
        )
        assert row.state.until_at is None  # only `tradepipe resume` ends it
        assert row.figures == {"limit": 3, "orders_last_minute": 3}
        (fourth,) = await h.send(buy(1, ticker="D"))
        assert only(h, fourth) == (
            "rejected",
            'account "paper" is reduce_only (max_orders_per_minute 3: 3 orders were sent in the'
            " last minute): an entry is rejected; exits, cancels and flatten go through",
        )
        (out,) = await h.send(exit_(100, ticker="A"))  # exits always pass
        assert only(h, out)[0] == "submitted"
        events = [e for e in h.journal.events() if e["kind"] == "trading_state"]
        assert len(events) == 1  # tripped once, not once per order after it

    run(config, test)


def test_a_daily_loss_trip_from_a_snapshot_until_the_next_day(tmp_path):
    config = write_config(
        tmp_path,
        account=risk('max_daily_loss = 150\nday_starts_at = "09:00"\ntimezone = "UTC"\n'),
    )

    async def test(h: Harness):
        await h.engine.equity.snapshot("paper", PERIODIC)  # the day's start: 100,000
        await h.send(buy(10))
        await Operator(h.config, h.engine).paper_quote("paper", "AAPL", D(84))  # -160
        await h.engine.equity.snapshot("paper", PERIODIC)
        row = h.engine.states.rows[Scope.account("paper")]
        assert row.state.state is TradingState.REDUCE_ONLY
        assert row.limit == "max_daily_loss"
        # The clock is 2026-11-20 15:00 UTC: the day that started at 09:00 ends tomorrow 09:00.
        assert row.state.until_at is not None
        assert row.state.until_at.isoformat() == "2026-11-21T09:00:00+00:00"
        assert row.figures["loss"] == 160
        assert "max_daily_loss 150: the day's loss is 160" in row.state.reason
        (entry,) = await h.send(buy(1, 84, ticker="MSFT"))
        assert only(h, entry) == (
            "rejected",
            'account "paper" is reduce_only (max_daily_loss 150: the day\'s loss is 160 (equity'
            " 99,840, 100,000 at the day's start)): an entry is rejected; exits, cancels and"
            " flatten go through",
        )
        (out,) = await h.send(exit_(84))
        assert only(h, out)[0] == "submitted"
        report = h.engine.risk_report()
        (account,) = report["accounts"]
        assert account["use"]["day_pnl"] == "-160"
        assert [s["limit"] for s in report["states"]] == ["max_daily_loss"]

    run(config, test)


def test_on_trip_flatten_closes_everything_then_halts(tmp_path):
    config = write_config(tmp_path, account=risk('max_drawdown = "0.1%"\non_trip = "flatten"\n'))

    async def test(h: Harness):
        await h.engine.equity.snapshot("paper", PERIODIC)
        await h.send(buy(10), buy(5, 50, ticker="MSFT"))
        await Operator(h.config, h.engine).paper_quote("paper", "AAPL", D(80))  # -200
        await h.engine.equity.snapshot("paper", PERIODIC)
        await h.engine.risk.settle()
        row = h.engine.states.rows[Scope.account("paper")]
        assert (row.state.state, row.limit) == (TradingState.HALTED, "max_drawdown")
        assert h.position("AAPL") == 0 and h.position("MSFT") == 0
        flattens = [
            e for e in h.journal.events() if e["kind"] == "operator" and "flatten" in e["detail"]
        ]
        assert len(flattens) == 1 and "max_drawdown trip" in flattens[0]["detail"]

    run(config, test)


def test_losses_in_a_row_block_until_resumed(tmp_path):
    config = write_config(tmp_path, subscription="max_consecutive_losses = 2\n")

    async def test(h: Harness):
        for _ in range(2):
            await h.send(buy(1, 100), exit_(90))
        scope = Scope.subscription("trend-paper")
        row = h.engine.states.rows[scope]
        assert (row.state.state, row.limit) == (TradingState.REDUCE_ONLY, "max_consecutive_losses")
        (blocked,) = await h.send(buy(1))
        assert only(h, blocked)[1].startswith(
            'subscription "trend-paper" is reduce_only (max_consecutive_losses 2: 2 losses in a row'
        )
        h.engine.states.resume(scope)
        (after,) = await h.send(buy(1))
        assert only(h, after)[0] == "submitted"
        report = h.engine.risk_report()
        assert report["subscriptions"][0]["use"]["consecutive_losses"] == 0

    run(config, test)


def test_a_loss_cooldown_blocks_for_its_seconds_then_lets_entries_through(tmp_path):
    config = write_config(tmp_path, subscription="max_consecutive_losses = 1\nloss_cooldown = 60\n")

    async def test(h: Harness):
        await h.send(buy(1, 100), exit_(90))
        (blocked,) = await h.send(buy(1))
        assert "loss_cooldown 60 s ends at" in only(h, blocked)[1]
        assert Scope.subscription("trend-paper") not in h.engine.states.rows  # no trip
        h.clock.advance(61)
        (after,) = await h.send(buy(1))
        assert only(h, after)[0] == "submitted"

    run(config, test)


def test_the_counts_are_seeded_from_the_journal_at_start(tmp_path):
    config = write_config(
        tmp_path,
        subscription="max_trades_per_day = 5\nmax_consecutive_losses = 3\n",
        account=risk("max_orders_per_minute = 50\n"),
    )

    async def test(h: Harness):
        await h.send(buy(1, 100), exit_(90), buy(1, 100), exit_(95), buy(2, 100))
        before = h.engine.risk_report()
        await h.engine.stop()
        h.engine = h.new_engine()
        await h.engine.start()
        after = h.engine.risk_report()
        assert after["subscriptions"] == before["subscriptions"]
        use = after["subscriptions"][0]["use"]
        assert (use["trades_today"], use["consecutive_losses"]) == (3, 2)
        assert after["accounts"][0]["use"]["orders_last_minute"] == 5
        assert after["accounts"][0]["use"]["open_positions"] == 1
        assert after["accounts"] == before["accounts"]

    run(config, test)


def test_a_dry_run_is_checked_by_the_same_limits(tmp_path):
    config = write_config(tmp_path, account=risk("max_order_value = 1000\n"))

    async def test(h: Harness):
        (big,) = await h.send(buy(20))
        reason = "max_order_value 1,000: this order is worth 2,000 (20 × 100)"
        assert only(h, big) == ("rejected", reason)
        (plan,) = await h.engine.preview(big)  # `tradepipe replay ID`
        assert (plan["kind"], plan["reason"]) == ("reject", reason)

    run(config, test)
