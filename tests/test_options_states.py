"""Trading states on option plans (SPEC §13, §15), through the engine and the real paper broker:
each order of an option plan is on its own contract, and each is judged against the position
of that contract (a put's close is an exit even though the call the plan buys is not held)."""

from __future__ import annotations

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tests.test_options_engine import CALL_605, PUT_595, given_chain, spy
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.engine.operator import Operator

PLANNED = (  # what the plan was before the state stripped its entry
    f"exit long 2 of 2; enter long 2 (buy 2 {CALL_605} ×100) (buy with optionType both:"
    " bullish entry, close the put, then buy a call)"
)
REDUCE_ONLY_WHY = (
    "everything is reduce_only (operator: daily review): the reversal's entry is rejected;"
    " exits, cancels and flatten go through"
)


async def hold_a_put(h: Harness) -> None:
    await given_chain(h)
    (bought,) = await h.send(spy("buy", "put"))
    assert h.deliveries(bought)[0][0] == "submitted"
    assert h.position(PUT_595) == 2


def test_reduce_only_closes_the_held_put_and_buys_no_call(tmp_path):
    async def test(h: Harness):
        await hold_a_put(h)
        await Operator(h.config, h.engine).halt(
            Scope.everything(), TradingState.REDUCE_ONLY, "daily review"
        )
        (reversal,) = await h.send(spy("buy"))  # optionType both: close the put, buy a call
        ((status, summary),) = h.deliveries(reversal)
        assert status == "submitted"
        assert summary == f"{PLANNED}; {REDUCE_ONLY_WHY}"
        orders = [(o["role"], o["ticker"], o["side"]) for o in h.journal.orders(signal_id=reversal)]
        assert orders == [("exit", PUT_595, "sell")]
        assert h.position(PUT_595) == 0
        assert h.position(CALL_605) == 0

    run(write_config(tmp_path), test)


def test_halted_rejects_an_option_reversal_naming_it(tmp_path):
    async def test(h: Harness):
        await hold_a_put(h)
        await Operator(h.config, h.engine).halt(
            Scope.account("paper"), TradingState.HALTED, "broker maintenance"
        )
        (reversal,) = await h.send(spy("buy"))
        assert h.deliveries(reversal) == [
            (
                "rejected",
                'account "paper" is halted (operator: broker maintenance): a reversal is'
                " rejected; only an operator's flatten goes through",
            )
        ]
        assert h.journal.orders(signal_id=reversal) == []
        assert h.position(PUT_595) == 2

    run(write_config(tmp_path), test)


def test_reduce_only_lets_an_option_exit_through_and_rejects_a_new_contract(tmp_path):
    async def test(h: Harness):
        await hold_a_put(h)
        await Operator(h.config, h.engine).halt(
            Scope.everything(), TradingState.REDUCE_ONLY, "daily review"
        )
        (call,) = await h.send(spy("buy", "call"))  # the put stays: a call is a new entry
        ((status, reason),) = h.deliveries(call)
        assert status == "rejected"
        assert "an entry is rejected" in reason
        (exit_,) = await h.send(spy("exit", "put"))
        assert h.deliveries(exit_)[0][0] == "submitted"
        assert h.position(PUT_595) == 0

    run(write_config(tmp_path), test)


def test_gross_exposure_counts_the_put_a_reversal_closes_as_closed(tmp_path):
    """The risk limits after the states: the call is valued after the put's close (2 × 3.00 ×
    100 = 600 gone), not as if the close were a sale of the call (a short of 2 calls)."""
    config = write_config(tmp_path, account="[accounts.paper.risk]\nmax_gross_exposure = 1000\n")

    async def test(h: Harness):
        await hold_a_put(h)  # 600 of 1,000
        (reversal,) = await h.send(spy("buy"))  # the call: 2 × 4.00 × 100 = 800
        assert h.deliveries(reversal) == [("submitted", PLANNED)]
        assert (h.position(PUT_595), h.position(CALL_605)) == (0, 2)

    run(config, test)
