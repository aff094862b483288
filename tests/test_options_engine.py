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


def test_no_contract_fits_rejects_the_delivery_with_the_selectors_reason(tmp_path):
    async def test(h: Harness):
        await given_chain(h)
        (late,) = await h.send(spy("buy", expiration="2027-06-01"))
        assert h.deliveries(late) == [
            (
                "rejected",
                "no SPY option contract fits: no call expires on or after 2027-06-01"
                " (expiration 2027-06-01); the last listed is 2027-01-15",
            )
        ]
        (far,) = await h.send(spy("buy", strikesAway=9))
        status, reason = h.deliveries(far)[0]
        assert status == "rejected"
        assert "strikesAway 9 out of the money" in reason and "list only 2 strikes" in reason
        assert h.journal.orders(signal_id=far) == []

    run(write_config(tmp_path), test)


def test_options_are_never_sold_short_and_never_take_the_underlyings_prices(tmp_path):
    async def test(h: Harness):
        await given_chain(h)
        (sell,) = await h.send(spy("sell", "call"))
        assert h.deliveries(sell) == [
            (
                "skipped",
                "sell with optionType call: no call of SPY is held to sell, and options are"
                " never sold short",
            )
        ]
        (limit,) = await h.send(spy("buy", orderType="limit", limitPrice=600))
        status, reason = h.deliveries(limit)[0]
        assert status == "rejected"
        assert "market orders only (limit entries" in reason
        (bracket,) = await h.send(spy("buy", stopLoss={"percent": 5}))
        assert h.deliveries(bracket)[0][0] == "rejected"
        assert h.journal.orders() == []

    run(write_config(tmp_path), test)


def test_money_sizing_counts_the_contracts_price_times_100(tmp_path):
    """$1,000 at 4.00 a contract (×100) is 2 contracts, never 250."""

    async def test(h: Harness):
        await given_chain(h)
        (buy,) = await h.send(spy("buy", quantity=1000, quantityType="dollar_amount"))
        assert h.position(CALL_605) == 2
        assert h.deliveries(buy)[0][0] == "submitted"

    run(write_config(tmp_path), test)


def test_a_generated_chain_around_the_mark_and_a_contract_without_a_mark(tmp_path):
    """No chain given: the paper broker lists one around the underlying's mark (SPY at 600:
    strikes by 5, Fridays); the contract it picks has no mark yet, so the market order is
    rejected as a stock's would be."""

    async def test(h: Harness):
        (buy,) = await h.send(spy("buy", expiration="+7 days", strikesAway=0))
        status, reason = h.deliveries(buy)[0]
        assert status == "rejected"
        assert "paper rejected the entry order: no price for SPY 261127C00600000" in reason
        facts = plan(h, buy).get("facts") or []
        assert facts and facts[0].startswith("contract SPY 261127C00600000: call 600")
        chain = await h.engine.brokers["paper"].option_chain("SPY")
        strikes = sorted({c.strike for c in chain})
        assert (strikes[0], strikes[1] - strikes[0], strikes[-1]) == (D(500), D(5), D(700))
        assert date(2026, 11, 20) in {c.expiration for c in chain}  # today is a Friday
        assert date(2027, 5, 21) in {c.expiration for c in chain}  # a monthly 6 months out

    run(write_config(tmp_path), test)


def test_a_continuous_future_trades_its_front_contract(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send(
            {"ticker": "MES1!", "action": "buy", "quantity": 1, "signalPrice": 5000}
        )
        assert h.deliveries(buy) == [("submitted", "enter long 1 (buy 1 MESZ2026 ×5)")]
        assert h.position("MESZ2026") == 1
        assert plan(h, buy)["facts"] == [
            "MES1! → MESZ2026 (expires 2026-12-18; roll 2 days before expiry)"
        ]
        (sell,) = await h.send({"ticker": "MES1!", "action": "exit", "signalPrice": 5010})
        assert h.position("MESZ2026") == 0
        assert h.deliveries(sell)[0][0] == "submitted"

    run(write_config(tmp_path), test)


def test_the_roll_setting_moves_to_the_next_contract(tmp_path):
    async def test(h: Harness):
        (buy,) = await h.send(
            {"ticker": "MES1!", "action": "buy", "quantity": 1, "signalPrice": 5000}
        )
        assert h.position("MESH2027") == 1
        (fact,) = plan(h, buy)["facts"]
        assert fact.startswith("MES1! → MESH2027 (expires 2027-03-19; MESZ2026 rolled on")

    run(write_config(tmp_path, account="roll_days_before_expiry = 30\n"), test)


def test_a_broker_that_cannot_map_continuous_futures_refuses_them(tmp_path):
    import dataclasses

    async def test(h: Harness):
        broker = h.engine.brokers["paper"]
        broker.capabilities = dataclasses.replace(broker.capabilities, continuous_futures=False)
        (buy,) = await h.send({"ticker": "ES1!", "action": "buy", "quantity": 1})
        assert h.deliveries(buy) == [
            (
                "rejected",
                'ES1! is a continuous futures ticker, and account "paper" (broker paper) cannot'
                " map it to a dated contract: send the contract itself, e.g. ESZ2026; nothing"
                " was sent",
            )
        ]

    run(write_config(tmp_path), test)


def test_a_burst_reads_the_chain_once_until_it_is_old_or_replaced():
    """The chain is kept 5 minutes per account + underlying; `paper chain` forgets it."""
    import asyncio

    from tradepipe.engine.contracts import ContractLists

    class Lister:  # a broker's chain endpoint, counting its calls
        name = "counting"
        calls = 0

        async def option_chain(self, underlying):
            self.calls += 1
            return [underlying, self.calls]

    now = [0.0]
    lists = ContractLists(ttl=300, monotonic=lambda: now[0])
    broker = Lister()

    async def burst():
        return [await lists.chain("paper", broker, "SPY") for _ in range(5)]

    assert asyncio.run(burst()) == [["SPY", 1]] * 5
    asyncio.run(lists.chain("other", broker, "SPY"))  # another account: its own
    assert broker.calls == 2
    now[0] = 299.0
    asyncio.run(lists.chain("paper", broker, "SPY"))
    assert broker.calls == 2
    now[0] = 300.0
    assert asyncio.run(lists.chain("paper", broker, "SPY")) == ["SPY", 3]
    lists.forget("paper", "SPY")
    assert asyncio.run(lists.chain("paper", broker, "SPY")) == ["SPY", 4]


def test_an_emulated_bracket_of_a_continuous_future_protects_the_dated_contract(tmp_path):
    """Without native brackets the stop is placed once the entry fills: on MESZ2026, the
    contract the orders are for, though the signal said MES1!."""

    async def test(h: Harness):
        (buy,) = await h.send(
            {
                "ticker": "MES1!",
                "action": "buy",
                "quantity": 1,
                "signalPrice": 5000,
                "stopLoss": {"amount": 10},
            }
        )
        orders = {o["role"]: o for o in h.journal.orders(signal_id=buy)}
        assert (orders["entry"]["ticker"], orders["entry"]["status"]) == ("MESZ2026", "filled")
        stop = orders["stop_loss"]
        assert (stop["ticker"], stop["status"], D(stop["stop_price"])) == (
            "MESZ2026",
            "accepted",
            D(4990),
        )

    run(write_config(tmp_path, account="native_brackets = false\n"), test)


def test_a_reversal_a_crash_interrupted_resumes_on_its_contracts_sending_nothing_twice(tmp_path):
    """The journaled plan keeps each order's contract: a restart asks the broker about the
    close and the put by client order id instead of sending either again (or sending them for
    SPY itself)."""

    async def test(h: Harness):
        await given_chain(h)
        await h.send(spy("buy"))
        (sell,) = await h.send(spy("sell"))
        await h.crash_and_restart(sell, orders_submitting=True)
        rows = h.journal.conn.execute("SELECT request FROM paper_orders ORDER BY rowid")
        tickers = [json.loads(r[0])["ticker"] for r in rows]
        assert tickers == [CALL_605, CALL_605, PUT_595]  # buy call; close it; buy the put
        assert h.position(PUT_595) == 2 and h.position(CALL_605) == 0
        statuses = sorted((o["ticker"], o["status"]) for o in h.journal.orders(signal_id=sell))
        assert statuses == [(CALL_605, "filled"), (PUT_595, "filled")]

    run(write_config(tmp_path), test)


def test_options_are_for_equity_underlyings_only(tmp_path):
    async def test(h: Harness):
        (future,) = await h.send({**spy("buy"), "ticker": "MESZ2026", "signalPrice": 5000})
        (crypto,) = await h.send({**spy("buy"), "ticker": "BTC/USD", "signalPrice": 90000})
        for signal_id, name in ((future, "MESZ2026"), (crypto, "BTC/USD")):
            status, reason = h.deliveries(signal_id)[0]
            assert status == "rejected"
            assert f"options are traded for US equity underlyings only ({name}" in reason
        assert h.journal.orders() == []

    run(write_config(tmp_path), test)


def test_a_journaled_plan_reads_back_with_its_contracts_and_facts():
    """What a restart resumes from: each order's own ticker and the choosing facts survive the
    journal's JSON; a stock plan's record is unchanged (no ticker, no facts keys)."""
    from tradepipe.core.decision import Plan, PlannedOrder, Reject, plan_from_json, plan_to_json
    from tradepipe.core.model import OrderRole, Side

    plan = Plan(
        "close the call, then buy a put",
        (
            PlannedOrder(
                "exit", Side.SELL, D(2), OrderRole.EXIT, wait_for_fill=True, ticker=CALL_605
            ),
            PlannedOrder("entry", Side.BUY, D(2), OrderRole.ENTRY, ticker=PUT_595),
        ),
        facts=(f"contract {PUT_595}: put 595", "strikesAway 1"),
    )
    stored = json.loads(json.dumps(plan_to_json(plan)))
    assert plan_from_json(stored) == plan
    stock = plan_to_json(
        Plan("enter long 1", (PlannedOrder("entry", Side.BUY, D(1), OrderRole.ENTRY),))
    )
    assert "facts" not in stock and "ticker" not in stock["orders"][0]
    assert plan_to_json(Reject("no", ("ES1! → ESZ2026",))) == {
        "kind": "reject",
        "reason": "no",
        "facts": ["ES1! → ESZ2026"],
    }
