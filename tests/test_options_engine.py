"""Options and continuous futures through the engine and the real paper broker (SPEC §15): the
contract is chosen from the chain, the plan trades the contract, the facts are journaled."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tradepipe.core.options import OptionRight

D = Decimal
CALL_605 = "SPY 261218C00605000"
PUT_595 = "SPY 261218P00595000"


def spy(action: str, option_type: str = "both", **more) -> dict:
    return {
        "ticker": "SPY",
        "action": action,
        "optionType": option_type,
        "expiration": "2026-12-18",
        "strikesAway": 1,
        "quantity": 2,
        "signalPrice": 600,
        **more,
    }


async def given_chain(h: Harness) -> None:
    """SPY expiring 2026-12-18 and 2027-01-15, strikes 590-610 by 5; the two contracts the
    signals pick are priced."""
    broker = h.engine.brokers["paper"]
    rows = [
        (expiry, right, D(strike))
        for expiry in (date(2026, 12, 18), date(2027, 1, 15))
        for right in OptionRight
        for strike in range(590, 615, 5)
    ]
    broker.give_chain("SPY", rows)
    await broker.observe_price(CALL_605, D("4.00"))
    await broker.observe_price(PUT_595, D("3.00"))


def plan(h: Harness, signal_id: int) -> dict:
    (delivery,) = h.journal.deliveries_for([signal_id])
    return json.loads(delivery["plan"])


def test_call_entry_reversal_to_a_put_and_exit(tmp_path):
    async def test(h: Harness):
        await given_chain(h)
        (buy,) = await h.send(spy("buy"))
        assert h.deliveries(buy) == [
            (
                "submitted",
                f"enter long 2 (buy 2 {CALL_605} ×100) (buy with optionType both: bullish"
                " entry, buy a call)",
            )
        ]
        assert h.position(CALL_605) == 2
        facts = plan(h, buy)["facts"]
        assert facts[0] == f"contract {CALL_605}: call 605 expiring 2026-12-18 (multiplier 100)"
        assert "at the money 600; strikesAway 1 out of the money → 605" in facts[-2]
        (sell,) = await h.send(spy("sell"))
        assert h.position(CALL_605) == 0
        assert h.position(PUT_595) == 2
        legs = [
            (o["role"], o["ticker"], o["side"], o["status"])
            for o in h.journal.orders(signal_id=sell)
        ]
        assert sorted(legs) == [
            ("entry", PUT_595, "buy", "filled"),
            ("exit", CALL_605, "sell", "filled"),
        ]
        (exit_,) = await h.send(spy("exit"))
        assert h.position(PUT_595) == 0
        assert h.deliveries(exit_)[0][0] == "submitted"

    run(write_config(tmp_path), test)
