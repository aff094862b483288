"""Trading states in the engine (SPEC §13): the operator's halt and resume through the Operator,
every decided plan gated by the state in force (deliveries, approvals, dry runs), what still
goes out while halted (an operator's flatten, the emulated legs that protect an entry accepted
before the halt), and the states shown in /healthz. The real paper broker, a real journal."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.engine.operator import Operator
from tradepipe.errors import UsageError

HALTED, REDUCE_ONLY = TradingState.HALTED, TradingState.REDUCE_ONLY
D99, D120 = Decimal(99), Decimal(120)
BUY = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
EVERYTHING, PAPER = Scope.everything(), Scope.account("paper")


def operator(h: Harness) -> Operator:
    return Operator(h.config, h.engine)


def test_a_halt_rejects_a_buy_with_the_reason_and_resume_lets_the_next_one_fill(tmp_path):
    async def test(h: Harness):
        answer = await operator(h).halt(PAPER, HALTED, "broker maintenance")
        assert (answer["scope"], answer["name"], answer["state"]) == ("account", "paper", "halted")
        assert answer["reason"] == "operator: broker maintenance"
        (buy,) = await h.send(BUY)
        assert h.deliveries(buy) == [
            (
                "rejected",
                'account "paper" is halted (operator: broker maintenance): an entry is rejected;'
                " only an operator's flatten goes through",
            )
        ]
        assert h.journal.orders(signal_id=buy) == []
        resumed = await operator(h).resume(PAPER)
        assert (resumed["resumed"], resumed["trading_states"]) == (True, [])
        (again,) = await h.send(BUY | {"id": "again"})
        assert h.deliveries(again) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        assert h.position() == 5
        trail = [
            (e["kind"], e["subject"], json.loads(e["detail"]))
            for e in h.journal.events()
            if e["kind"] in ("operator", "trading_state")
        ]
        assert [(kind, subject, d.get("action") or d["state"]) for kind, subject, d in trail] == [
            ("operator", 'account "paper"', "halt"),
            ("trading_state", 'account "paper"', "halted"),
            ("operator", 'account "paper"', "resume"),
            ("trading_state", 'account "paper"', "active"),
        ]
        assert trail[0][2]["reason"] == "broker maintenance"

    run(write_config(tmp_path), test)


def test_reduce_only_lets_an_exit_through_and_a_reversal_only_exits(tmp_path):
    async def test(h: Harness):
        await h.send(BUY)
        await operator(h).halt(EVERYTHING, REDUCE_ONLY, "daily review")
        (add,) = await h.send(BUY | {"id": "add"})
        assert h.deliveries(add) == [
            (
                "rejected",
                "everything is reduce_only (operator: daily review): an add is rejected; exits,"
                " cancels and flatten go through",
            )
        ]
        (partial,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "sentiment": "long", "quantity": 2}
        )
        assert h.deliveries(partial)[0][0] == "submitted"
        assert h.position() == 3
        (reversal,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 8, "signalPrice": 100}
        )
        assert h.deliveries(reversal) == [
            (
                "submitted",
                "exit long 3, wait for the fill, then sell 8; everything is reduce_only"
                " (operator: daily review): the reversal's entry is rejected; exits, cancels and"
                " flatten go through",
            )
        ]
        assert [o["role"] for o in h.journal.orders(signal_id=reversal)] == ["exit"]
        assert h.position() == 0

    run(write_config(tmp_path, subscription="allow_add = true\n"), test)


def test_the_strictest_scope_wins_and_other_subscriptions_trade_on(tmp_path):
    config = write_config(
        tmp_path,
        """
        [accounts.other]
        broker = "paper"
        cash = 100000

        [subscriptions.trend-other]
        strategy = "trend"
        account = "other"
        """,
    )

    def outcomes(h: Harness, signal_id: int) -> dict[str, tuple[str, str]]:
        found = h.journal.deliveries_for([signal_id])
        return {d["subscription"]: (d["status"], d["reason"]) for d in found}

    async def test(h: Harness):
        await operator(h).halt(Scope.subscription("trend-paper"), HALTED, "script bug")
        (first,) = await h.send(BUY)
        assert outcomes(h, first) == {
            "trend-paper": (
                "rejected",
                'subscription "trend-paper" is halted (operator: script bug): an entry is'
                " rejected; only an operator's flatten goes through",
            ),
            "trend-other": ("submitted", "enter long 5 (buy 5 AAPL)"),
        }
        await operator(h).halt(Scope.strategy("trend"), REDUCE_ONLY, "review")
        (second,) = await h.send(BUY | {"ticker": "MSFT", "id": "m"})
        reasons = {name: reason for name, (_, reason) in outcomes(h, second).items()}
        assert reasons["trend-paper"].startswith('subscription "trend-paper" is halted')
        assert reasons["trend-other"].startswith('strategy "trend" is reduce_only (operator')
        await operator(h).resume(Scope.strategy("trend"))
        (third,) = await h.send(BUY | {"ticker": "MSFT", "id": "m2"})
        assert outcomes(h, third)["trend-other"][0] == "submitted"

    run(config, test)


def test_an_operators_flatten_closes_a_position_while_halted(tmp_path):
    async def test(h: Harness):
        await h.send(BUY)
        await operator(h).halt(EVERYTHING, HALTED, "stop everything")
        (exit_,) = await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 100})
        assert h.deliveries(exit_)[0][1].startswith(
            "everything is halted (operator: stop everything): an exit is rejected"
        )
        assert h.position() == 5
        (closed,) = (await operator(h).flatten("paper", None))["flattened"]
        assert closed["closed"]["status"] == "filled"
        assert h.position() == 0

    run(write_config(tmp_path), test)


def test_a_cancel_signal_passes_a_halt(tmp_path):
    async def test(h: Harness):
        (rest,) = await h.send(BUY | {"orderType": "limit", "limitPrice": 90})
        await operator(h).halt(EVERYTHING, HALTED, "stop everything")
        (cancel,) = await h.send({"ticker": "AAPL", "action": "cancel"})
        assert h.deliveries(cancel)[0][0] == "submitted"
        assert [o["status"] for o in h.journal.orders(signal_id=rest)] == ["canceled"]

    run(write_config(tmp_path), test)


def test_emulated_bracket_legs_of_an_entry_accepted_before_the_halt_still_protect_it(tmp_path):
    async def test(h: Harness):
        bracket = BUY | {
            "orderType": "limit",
            "limitPrice": 99,
            "takeProfit": {"percent": 10},
            "stopLoss": {"amount": 5},
        }
        (entry,) = await h.send(bracket)
        await operator(h).halt(EVERYTHING, HALTED, "stop everything")
        await operator(h).paper_quote("paper", "AAPL", D99)  # the resting entry fills
        await h.engine.drain()
        await h.engine.settle_brackets("paper", "AAPL")
        legs = {o["role"]: o["status"] for o in h.journal.orders(signal_id=entry)}
        assert legs == {"entry": "filled", "take_profit": "accepted", "stop_loss": "accepted"}

    run(write_config(tmp_path, account="native_brackets = false\n"), test)


def test_a_halt_set_while_a_reversal_waits_for_its_exit_stops_its_entry(tmp_path):
    config = write_config(
        tmp_path,
        subscription='exit_order_type = "limit"\nexit_fill_timeout = 5\n'
        "use_signal_order_type = false\n",
    )

    async def test(h: Harness):
        await h.send(BUY)
        reversal = {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 100}
        sending = asyncio.create_task(h.send(reversal | {"limitPrice": 120}))
        await asyncio.sleep(0.1)  # the exit rests at 120 and the delivery waits for its fill
        await operator(h).halt(PAPER, HALTED, "news")
        await h.engine.brokers["paper"].observe_price("AAPL", D120)
        (sell,) = await asyncio.wait_for(sending, 5)
        ((status, reason),) = h.deliveries(sell)
        assert status == "submitted"
        assert reason.endswith(
            '; the entry was not sent: account "paper" is halted (operator: news): the'
            " reversal's entry is rejected; only an operator's flatten goes through"
        )
        assert [o["role"] for o in h.journal.orders(signal_id=sell)] == ["exit"]
        assert h.position() == 0

    run(config, test)


def test_approval_and_dry_run_are_gated_too(tmp_path):
    async def test(h: Harness):
        (waiting,) = await h.send(BUY)
        ((status, _),) = h.deliveries(waiting)
        assert status == "pending_approval"
        await operator(h).halt(PAPER, REDUCE_ONLY, "review")
        (plan,) = (await operator(h).replay(waiting, False))["plans"]
        assert (plan["kind"], plan["reason"]) == (
            "reject",
            'account "paper" is reduce_only (operator: review): an entry is rejected; exits,'
            " cancels and flatten go through",
        )
        answer = await operator(h).approve(waiting)
        assert answer["status"] == "rejected"
        assert h.journal.orders(signal_id=waiting) == []

    run(write_config(tmp_path, subscription="auto_submit = false\n"), test)


@pytest.mark.parametrize(
    ("scope", "state", "reason", "message"),
    [
        (
            Scope.account("live"),
            HALTED,
            "x",
            'no account "live" in the config (accounts: paper)',
        ),
        (
            Scope.strategy("mean"),
            HALTED,
            "x",
            'no strategy "mean" in the config (strategies: trend)',
        ),
        (
            Scope.subscription("trend-live"),
            HALTED,
            "x",
            'no subscription "trend-live" in the config (subscriptions: trend-paper)',
        ),
        (EVERYTHING, HALTED, "  ", "--reason must say why (it is shown with every order it stops)"),
        (EVERYTHING, HALTED, "x" * 501, "--reason is 501 characters; at most 500"),
        (
            EVERYTHING,
            TradingState.ACTIVE,
            "x",
            "halt sets halted or reduce_only; `tradepipe resume` ends a halt",
        ),
    ],
)
def test_a_halt_names_what_is_wrong_and_journals_nothing(tmp_path, scope, state, reason, message):
    async def test(h: Harness):
        with pytest.raises(UsageError) as raised:
            await operator(h).halt(scope, state, reason)
        assert str(raised.value) == message
        assert h.journal.trading_states() == []
        assert [e for e in h.journal.events() if e["kind"] == "operator"] == []

    run(write_config(tmp_path), test)


def test_resume_of_a_scope_a_reload_removed_still_ends_its_state(tmp_path):
    async def test(h: Harness):
        h.engine.states.halt(Scope.strategy("gone"), HALTED, "operator: old")
        with pytest.raises(UsageError, match='no strategy "ghost"'):
            await operator(h).resume(Scope.strategy("ghost"))
        assert (await operator(h).resume(Scope.strategy("gone")))["resumed"] is True

    run(write_config(tmp_path), test)


def test_health_shows_a_halt_without_calling_it_degraded(tmp_path):
    async def test(h: Harness):
        await operator(h).halt(PAPER, REDUCE_ONLY, "FOMC")
        health = h.engine.health()
        assert health["status"] == "ready"
        ((state,),) = [health["trading_states"]]
        assert {k: state[k] for k in ("scope", "name", "state", "reason", "source")} == {
            "scope": "account",
            "name": "paper",
            "state": "reduce_only",
            "reason": "operator: FOMC",
            "source": "operator",
        }
        assert (await operator(h).status())["trading_states"] == health["trading_states"]

    run(write_config(tmp_path), test)


def test_a_reversal_a_crash_interrupted_looks_its_journaled_entry_up_even_while_halted(tmp_path):
    """The entry was journaled (and maybe sent) before the crash: after the restart, halted,
    it is looked up at the broker, never reported 'not sent'."""

    async def test(h: Harness):
        await h.send(BUY)
        (sell,) = await h.send(
            {"ticker": "AAPL", "action": "sell", "quantity": 3, "signalPrice": 100}
        )
        assert h.position() == -3
        h.engine.states.halt(EVERYTHING, HALTED, "operator: after the crash")
        await h.crash_and_restart(sell, orders_submitting=True)
        assert h.deliveries(sell) == [("submitted", "exit long 5, wait for the fill, then sell 3")]
        assert sorted(o["status"] for o in h.journal.orders(signal_id=sell)) == [
            "filled",
            "filled",
        ]
        assert h.position() == -3

    run(write_config(tmp_path), test)
