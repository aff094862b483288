"""The paper broker on a real journal file: fills at the mark, idempotent ids, restarts."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.helpers import FixedClock
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.core.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradepipe.errors import OrderRejected
from tradepipe.journal import Journal

D = Decimal


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def paper(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    run(broker.connect())
    yield broker
    journal.close()


def order(cid="c1", side=Side.BUY, quantity="5", **extra) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        account="paper",
        ticker="AAPL",
        side=side,
        quantity=D(quantity),
        **extra,
    )


def test_market_order_fills_at_the_mark(paper):
    run(paper.observe_price("AAPL", D(190)))
    state = run(paper.submit(order()))
    assert (state.status, state.filled_quantity, state.average_fill_price) == (
        OrderStatus.FILLED,
        D(5),
        D(190),
    )
    assert run(paper.position("AAPL")).quantity == D(5)
    assert run(paper.account()).cash == D(10000) - D(950)


def test_market_order_without_a_mark_is_rejected_with_the_fix(paper):
    state = run(paper.submit(order()))
    assert state.status is OrderStatus.REJECTED
    assert "paper quote paper AAPL PRICE" in state.message


def test_the_same_client_id_never_makes_a_second_order(paper):
    run(paper.observe_price("AAPL", D(100)))
    first = run(paper.submit(order()))
    second = run(paper.submit(order()))
    assert second == first
    assert run(paper.position("AAPL")).quantity == D(5)


def test_unknown_order_lookup_answers_none(paper):
    assert run(paper.get_order("never-sent")) is None


# Margins on a 10,000 account at a mark of 100 (SPEC §8 paper broker): longs are paid in full,
# a short needs Reg T's 50 % initial margin, and closing needs nothing and frees some: a long's
# sale its proceeds, a cover its 50 %. Buying power is cash − 150 % of the shorts' value.
MARGIN_RULES = [
    # (held before: (side, quantity) fills, the order, the refusal or None if it fills)
    ("long-buy", [], (Side.BUY, "100"), None),
    (
        "long-buy-too-large",
        [],
        (Side.BUY, "101"),
        "paper broker: buy 101 AAPL at 100 needs 10,100.00 of buying power"
        " (longs are paid in full, no margin); 10,000.00 available",
    ),
    ("short-sell", [], (Side.SELL, "200"), None),
    (
        "short-sell-too-large",
        [],
        (Side.SELL, "201"),
        "paper broker: sell 201 AAPL at 100 needs 10,050.00 of buying power"
        " (Reg T 50 % initial margin on shorts); 10,000.00 available",
    ),
    (
        "short-sell-absurd",  # the finding: it filled, and equity went to −9.99e20
        [],
        (Side.SELL, "99999999999999"),
        "paper broker: sell 99999999999999 AAPL at 100 needs 4,999,999,999,999,950.00 of"
        " buying power (Reg T 50 % initial margin on shorts); 10,000.00 available",
    ),
    ("sell-closes-long", [(Side.BUY, "100")], (Side.SELL, "100"), None),
    ("sell-part-of-long", [(Side.BUY, "100")], (Side.SELL, "40"), None),
    # long 100, cash 0: the sale of the long frees 10,000, the 200 short need 10,000
    ("flip-long-to-short", [(Side.BUY, "100")], (Side.SELL, "300"), None),
    (
        "flip-long-to-short-too-large",
        [(Side.BUY, "100")],
        (Side.SELL, "302"),
        "paper broker: sell 302 AAPL at 100 needs 10,100.00 of buying power for the 202 it"
        " sells short (Reg T 50 % initial margin on shorts); 10,000.00 available",
    ),
    # short 200: cash 30,000, collateral 30,000, buying power 0
    ("cover", [(Side.SELL, "200")], (Side.BUY, "200"), None),
    ("cover-part", [(Side.SELL, "200")], (Side.BUY, "50"), None),
    (
        "add-to-short",
        [(Side.SELL, "200")],
        (Side.SELL, "1"),
        "paper broker: sell 1 AAPL at 100 needs 50.00 of buying power"
        " (Reg T 50 % initial margin on shorts); 0.00 available",
    ),
    # the cover of 200 frees 10,000, which pays for 100 long
    ("flip-short-to-long", [(Side.SELL, "200")], (Side.BUY, "300"), None),
    (
        "flip-short-to-long-too-large",
        [(Side.SELL, "200")],
        (Side.BUY, "301"),
        "paper broker: buy 301 AAPL at 100 needs 10,100.00 of buying power for the 101 it"
        " buys long (longs are paid in full, no margin); 10,000.00 available",
    ),
]


@pytest.mark.parametrize(
    ("before", "new", "refusal"),
    [row[1:] for row in MARGIN_RULES],
    ids=[row[0] for row in MARGIN_RULES],
)
def test_buying_power_checks_what_an_order_opens(paper, before, new, refusal):
    run(paper.observe_price("AAPL", D(100)))
    for i, (side, quantity) in enumerate(before):
        assert run(paper.submit(order(f"b{i}", side, quantity))).status is OrderStatus.FILLED
    held = run(paper.position("AAPL")).quantity
    side, quantity = new
    if refusal is None:
        state = run(paper.submit(order("new", side, quantity)))
        assert state.status is OrderStatus.FILLED
        assert run(paper.account()).buying_power >= 0
    else:
        with pytest.raises(OrderRejected) as refused:
            run(paper.submit(order("new", side, quantity)))
        assert str(refused.value) == refusal
        assert run(paper.get_order("new")) is None  # refused, as a broker refuses it
        assert run(paper.position("AAPL")).quantity == held


def test_buying_power_counts_the_shorts_of_every_ticker(paper):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.observe_price("MSFT", D(50)))
    run(paper.submit(order("short", Side.SELL, "100")))  # collateral 15,000 of cash 20,000
    assert run(paper.account()).buying_power == D(5000)
    msft = OrderRequest(
        client_order_id="msft", account="paper", ticker="MSFT", side=Side.BUY, quantity=D(101)
    )
    with pytest.raises(OrderRejected, match=r"5,050\.00 of buying power .*; 5,000\.00 available"):
        run(paper.submit(msft))
    # The short's loss takes buying power with it: at 110 the collateral is 16,500.
    run(paper.observe_price("AAPL", D(110)))
    assert run(paper.account()).buying_power == D(3500)


def test_a_resting_short_that_buying_power_cannot_carry_is_rejected_when_it_fills(paper):
    run(paper.observe_price("AAPL", D(100)))
    placed = run(
        paper.submit(order("s", Side.SELL, "300", order_type=OrderType.LIMIT, limit_price=D(105)))
    )
    assert placed.status is OrderStatus.ACCEPTED
    (state,) = run(paper.observe_price("AAPL", D(106)))
    assert state.status is OrderStatus.REJECTED
    assert state.message == (
        "paper broker: sell 300 AAPL at 105 needs 15,750.00 of buying power"
        " (Reg T 50 % initial margin on shorts); 10,000.00 available"
    )
    assert run(paper.position("AAPL")).quantity == 0


def test_short_then_cover_books_cash_and_average(paper):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.submit(order("s1", Side.SELL, "10")))
    assert run(paper.position("AAPL")).quantity == D(-10)
    run(paper.observe_price("AAPL", D(90)))
    run(paper.submit(order("b1", Side.BUY, "10")))
    assert run(paper.position("AAPL")).quantity == D(0)
    assert run(paper.account()).cash == D(10100)  # +1000 short sale, −900 cover


@pytest.mark.parametrize(
    ("kind", "side", "prices", "mark", "fills_at"),
    [
        (OrderType.LIMIT, Side.BUY, {"limit_price": D(95)}, D(96), None),
        (OrderType.LIMIT, Side.BUY, {"limit_price": D(95)}, D(94), D(95)),
        (OrderType.LIMIT, Side.SELL, {"limit_price": D(105)}, D(104), None),
        (OrderType.LIMIT, Side.SELL, {"limit_price": D(105)}, D(106), D(105)),
        (OrderType.STOP, Side.SELL, {"stop_price": D(95)}, D(96), None),
        (OrderType.STOP, Side.SELL, {"stop_price": D(95)}, D(95), D(95)),
        (OrderType.STOP, Side.BUY, {"stop_price": D(105)}, D(106), D(106)),
        (
            OrderType.STOP_LIMIT,
            Side.BUY,
            {"stop_price": D(105), "limit_price": D(106)},
            D(107),
            None,
        ),
        (
            OrderType.STOP_LIMIT,
            Side.BUY,
            {"stop_price": D(105), "limit_price": D(106)},
            D(105.5),
            D(105.5),
        ),
    ],
    ids=[
        "buy-limit-rests",
        "buy-limit-fills",
        "sell-limit-rests",
        "sell-limit-fills",
        "sell-stop-rests",
        "sell-stop-triggers",
        "buy-stop-triggers",
        "stop-limit-past-limit-rests",
        "stop-limit-fills",
    ],
)
def test_resting_orders_fill_when_a_later_mark_crosses(paper, kind, side, prices, mark, fills_at):
    run(paper.observe_price("AAPL", D(100)))
    placed = run(paper.submit(order(side=side, quantity="1", order_type=kind, **prices)))
    assert placed.status is OrderStatus.ACCEPTED
    changed = run(paper.observe_price("AAPL", mark))
    state = run(paper.get_order("c1"))
    if fills_at is None:
        assert changed == [] and state.status is OrderStatus.ACCEPTED
    else:
        assert [s.client_order_id for s in changed] == ["c1"]
        assert (state.status, state.average_fill_price) == (OrderStatus.FILLED, fills_at)


def test_ioc_limit_that_does_not_cross_is_canceled(paper):
    run(paper.observe_price("AAPL", D(100)))
    state = run(
        paper.submit(
            order(order_type=OrderType.LIMIT, limit_price=D(90), time_in_force=TimeInForce.IOC)
        )
    )
    assert state.status is OrderStatus.CANCELED


def test_cancel_resting_order(paper):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.submit(order(order_type=OrderType.LIMIT, limit_price=D(90))))
    assert len(run(paper.open_orders("AAPL"))) == 1
    assert run(paper.cancel("c1")).status is OrderStatus.CANCELED
    assert run(paper.open_orders("AAPL")) == []


def test_books_survive_a_restart(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    run(broker.connect())
    run(broker.observe_price("AAPL", D(100)))
    run(broker.submit(order()))
    journal.close()
    journal = Journal.open(path)
    again = PaperBroker(
        "paper", journal, cash=D(999), clock=FixedClock()
    )  # initial cash unused now
    run(again.connect())
    assert run(again.position("AAPL")).quantity == D(5)
    assert run(again.account()).cash == D(9500)
    assert run(again.get_order("c1")).status is OrderStatus.FILLED


def test_a_new_marketable_limit_fills_at_the_better_mark(paper):
    run(paper.observe_price("AAPL", D(100)))
    state = run(paper.submit(order(order_type=OrderType.LIMIT, limit_price=D(105))))
    assert (state.status, state.average_fill_price) == (OrderStatus.FILLED, D(100))


def test_bracket_children_are_held_until_the_entry_fills_then_one_cancels_the_other(paper):
    run(paper.observe_price("AAPL", D(100)))
    entry = order("e", order_type=OrderType.LIMIT, limit_price=D(95))
    take = order("t", Side.SELL, order_type=OrderType.LIMIT, limit_price=D(110))
    stop = order("s", Side.SELL, order_type=OrderType.STOP, stop_price=D(90))
    states = run(paper.submit_bracket(entry, (take, stop)))
    assert [s.status for s in states] == [OrderStatus.ACCEPTED] * 3
    assert states[1].message == "held until the entry fills"
    run(paper.observe_price("AAPL", D(89)))  # fills the entry; held children did not trigger
    assert run(paper.get_order("e")).average_fill_price == D(95)
    assert run(paper.get_order("s")).status is OrderStatus.ACCEPTED
    changed = run(paper.observe_price("AAPL", D(89)))  # now the live stop triggers
    assert {s.client_order_id: s.status for s in changed} == {
        "s": OrderStatus.FILLED,
        "t": OrderStatus.CANCELED,
    }
    assert run(paper.position("AAPL")).quantity == 0


def test_bracket_of_a_rejected_entry_is_canceled(paper):
    states = run(
        paper.submit_bracket(
            order("e"), (order("t", Side.SELL, order_type=OrderType.LIMIT, limit_price=D(110)),)
        )
    )
    assert [s.status for s in states] == [OrderStatus.REJECTED, OrderStatus.CANCELED]


@pytest.mark.parametrize(
    ("trail", "marks", "fills_at"),
    [
        # amount 5: the high moves 100 → 110, the stop 95 → 105; 106 holds, 104 triggers.
        ({"trail_amount": D(5)}, [110, 106, 104], D(104)),
        # percent 10: high 120 puts the stop at 108; 109 holds, 107.5 triggers.
        ({"trail_percent": D(10)}, [120, 109, D("107.5")], D("107.5")),
        # a gap through the stop fills at the mark, not at the stop
        ({"trail_amount": D(5)}, [103, 90], D(90)),
    ],
)
def test_a_trailing_sell_stop_follows_the_high_and_fills_when_the_mark_falls_back(
    paper, trail, marks, fills_at
):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.submit(order("long", quantity="5")))
    stop = run(paper.submit(order("trail", Side.SELL, order_type=OrderType.TRAILING_STOP, **trail)))
    assert stop.status is OrderStatus.ACCEPTED
    for mark in marks[:-1]:
        assert run(paper.observe_price("AAPL", D(mark))) == []
    (filled,) = run(paper.observe_price("AAPL", D(marks[-1])))
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, fills_at)
    assert run(paper.position("AAPL")).quantity == 0


def test_a_trailing_buy_stop_follows_the_low(paper):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.submit(order("short", Side.SELL, quantity="5")))
    stop = order("trail", Side.BUY, order_type=OrderType.TRAILING_STOP, trail_amount=D(3))
    run(paper.submit(stop))
    assert run(paper.observe_price("AAPL", D(90))) == []  # low 90, stop 93
    state = run(paper.get_order("trail"))
    assert state.message == "trailing: stop at 93 (low 90)"
    assert run(paper.observe_price("AAPL", D(92))) == []
    (filled,) = run(paper.observe_price("AAPL", D(93)))
    assert filled.average_fill_price == D(93)
    assert run(paper.position("AAPL")).quantity == 0


def test_a_trailing_bracket_leg_trails_from_the_entry_fill(paper):
    from tradepipe.core.model import OrderRole

    run(paper.observe_price("AAPL", D(100)))
    entry = order("entry", order_type=OrderType.LIMIT, limit_price=D(95))
    child = order(
        "sl",
        Side.SELL,
        order_type=OrderType.TRAILING_STOP,
        trail_amount=D(2),
        role=OrderRole.STOP_LOSS,
    )
    run(paper.submit_bracket(entry, [child]))
    # Held while the entry rests: it does not trail marks before the entry fills.
    assert run(paper.observe_price("AAPL", D(120))) == []
    changed = run(paper.observe_price("AAPL", D(94)))  # the entry fills at its limit, 95
    assert [(s.client_order_id, s.status) for s in changed] == [
        ("entry", OrderStatus.FILLED),
        ("sl", OrderStatus.ACCEPTED),
    ]
    assert run(paper.get_order("sl")).message == "trailing: stop at 93 (high 95)"
    assert run(paper.observe_price("AAPL", D("93.5"))) == []
    (stopped,) = run(paper.observe_price("AAPL", D(93)))
    assert stopped.client_order_id == "sl" and stopped.average_fill_price == D(93)


def test_replace_moves_a_bracket_leg_once_and_keeps_its_one_cancels_other(paper):
    from tradepipe.core.model import OrderRole

    run(paper.observe_price("AAPL", D(100)))
    tp = order("tp", Side.SELL, order_type=OrderType.LIMIT, limit_price=D(110))
    sl = order("sl", Side.SELL, order_type=OrderType.STOP, stop_price=D(95))
    run(paper.submit_bracket(order("entry"), [tp, sl]))
    moved = order(
        "be", Side.SELL, order_type=OrderType.STOP, stop_price=D(99), role=OrderRole.STOP_LOSS
    )
    state = run(paper.replace("sl", moved))
    assert (state.status, state.stop_price) == (OrderStatus.ACCEPTED, D(99))
    assert run(paper.get_order("sl")).message == "replaced by be"
    assert run(paper.replace("sl", moved)) == state  # the same id again changes nothing
    assert sorted(o.client_order_id for o in run(paper.open_orders("AAPL"))) == ["be", "tp"]
    run(paper.observe_price("AAPL", D(111)))
    assert run(paper.get_order("be")).status is OrderStatus.CANCELED


@pytest.mark.parametrize("gone", ["cancel", "missing"])
def test_replacing_an_order_that_is_not_working_is_refused_in_the_brokers_words(paper, gone):
    run(paper.observe_price("AAPL", D(100)))
    run(paper.submit(order("sl", Side.SELL, order_type=OrderType.STOP, stop_price=D(95))))
    target = "sl"
    if gone == "cancel":
        run(paper.cancel("sl"))
    else:
        target = "nope"
    moved = order("be", Side.SELL, order_type=OrderType.STOP, stop_price=D(99))
    expected = "is canceled: nothing to replace" if gone == "cancel" else "no order nope"
    with pytest.raises(OrderRejected, match=expected):
        run(paper.replace(target, moved))
    assert run(paper.get_order("be")) is None


def test_cancelling_a_held_bracket_leg_cancels_it(paper):
    run(paper.observe_price("AAPL", D(100)))
    entry = order("entry", order_type=OrderType.LIMIT, limit_price=D(90))
    stop = order("sl", Side.SELL, order_type=OrderType.STOP, stop_price=D(85))
    run(paper.submit_bracket(entry, [stop]))
    state = run(paper.cancel("sl"))
    assert state.status is OrderStatus.CANCELED
    run(paper.observe_price("AAPL", D(89)))  # the entry fills; the canceled leg stays so
    assert run(paper.get_order("sl")).status is OrderStatus.CANCELED


@pytest.mark.parametrize(
    ("price", "why"),
    [
        (D(0), "must be a number greater than 0"),
        (D(-1), "must be a number greater than 0"),
        (D("NaN"), "must be a number greater than 0"),
        (D("Infinity"), "must be a number greater than 0"),
        (D("1e-30"), "is below one tick (0.0001): no order can trade at it"),
    ],
)
def test_a_mark_that_is_no_price_is_refused_and_the_old_one_stays(paper, price, why):
    run(paper.observe_price("AAPL", D(100)))
    with pytest.raises(OrderRejected) as refused:
        run(paper.observe_price("AAPL", price))
    assert str(refused.value) == f"paper broker: mark {price} for AAPL {why}"
    assert run(paper.quote("AAPL")) == D(100)


# -- what one unit is worth (SPEC §12) -----------------------------------------------------------


def futures_paper(tmp_path, cash="1000000", instruments=None) -> tuple[PaperBroker, Journal]:
    journal = Journal.open(tmp_path / "futures.db")
    broker = PaperBroker(
        "paper", journal, cash=D(cash), clock=FixedClock(), instruments=instruments
    )
    run(broker.connect())
    return broker, journal


def es(cid="f1", side=Side.BUY, quantity="1", ticker="ESZ2026") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, account="paper", ticker=ticker, side=side, quantity=D(quantity)
    )


@pytest.mark.parametrize(
    ("ticker", "kind", "multiplier", "tick", "lot"),
    [
        ("ESZ2026", "future", "50", "0.25", "1"),
        ("ESZ26", "future", "50", "0.25", "1"),
        ("CME_MINI:ESZ2026", "future", "50", "0.25", "1"),
        ("mesh2027", "future", "5", "0.25", "1"),
        ("MYMM26", "future", "0.5", "1", "1"),
        ("CLF27", "future", "1000", "0.01", "1"),
        ("SPY 261218C00600000", "option", "100", None, None),
        ("AAPL", "stock", "1", None, None),
        ("BTC/USD", "stock", "1", None, None),
    ],
)
def test_the_paper_broker_knows_what_one_unit_is_worth(
    tmp_path, ticker, kind, multiplier, tick, lot
):
    broker, journal = futures_paper(tmp_path)
    rules = run(broker.instrument(ticker))
    assert (str(rules.kind), rules.multiplier) == (kind, D(multiplier))
    assert (rules.tick_size, rules.lot_size) == (tick and D(tick), lot and D(lot))
    journal.close()


def test_the_accounts_table_overrides_a_root_and_adds_one(tmp_path):
    from tradepipe.core.instruments import ContractSpec

    mine = {"ES": ContractSpec(D(5), D("0.25")), "ZB": ContractSpec(D(1000), D("0.03125"))}
    broker, journal = futures_paper(tmp_path, instruments=mine)
    assert run(broker.instrument("ESZ2026")).multiplier == D(5)
    assert run(broker.instrument("ZBZ2026")).tick_size == D("0.03125")
    assert run(broker.instrument("NQZ2026")).multiplier == D(20)  # the table still answers
    journal.close()


def test_a_future_of_an_unknown_root_is_refused_never_valued_as_a_stock(tmp_path):
    broker, journal = futures_paper(tmp_path)
    words = r"ZBZ2026 is a future of ZB, whose multiplier .* table accounts\.paper\.instruments\.ZB"
    with pytest.raises(OrderRejected, match=words):
        run(broker.instrument("ZBZ2026"))
    run(broker.observe_price("ZBZ2026", D(110)))
    with pytest.raises(OrderRejected, match=words):
        run(broker.submit(es(ticker="ZBZ2026")))
    assert run(broker.open_orders()) == [] and run(broker.positions()) == []
    journal.close()


def test_a_futures_fill_moves_cash_equity_and_pnl_by_the_point_value(tmp_path):
    broker, journal = futures_paper(tmp_path)
    run(broker.observe_price("ESZ2026", D(5000)))
    state = run(broker.submit(es(quantity="2")))
    assert (state.status, state.average_fill_price) == (OrderStatus.FILLED, D(5000))
    account = run(broker.account())
    # paid in full like a stock (no margin on paper): 2 × 5000 × 50
    assert account.cash == D(1000000) - D(500000)
    assert account.equity == D(1000000)  # the contracts are worth what was paid
    run(broker.observe_price("ESZ2026", D(5010)))  # +10 points × 50 × 2 contracts
    assert run(broker.account()).equity == D(1001000)
    run(broker.submit(es("f2", Side.SELL, "2")))
    account = run(broker.account())
    assert account.cash == account.equity == D(1001000)  # the P&L, realized: 1,000
    assert run(broker.position("ESZ2026")).quantity == 0
    journal.close()


def test_a_short_future_gains_when_the_price_falls(tmp_path):
    broker, journal = futures_paper(tmp_path)
    run(broker.observe_price("MNQH2027", D(20000)))
    run(broker.submit(es(side=Side.SELL, quantity="3", ticker="MNQH2027")))
    run(broker.observe_price("MNQH2027", D(19900)))  # −100 points × 2 × 3 contracts short
    assert run(broker.account()).equity == D(1000600)
    run(broker.submit(es("f2", Side.BUY, "3", ticker="MNQH2027")))
    assert run(broker.account()).cash == D(1000600)
    journal.close()


def test_a_futures_buy_needs_its_whole_value_in_cash(tmp_path):
    broker, journal = futures_paper(tmp_path, cash="300000")
    run(broker.observe_price("ESZ2026", D(5000)))
    with pytest.raises(OrderRejected) as refused:  # 500,000 of ES
        run(broker.submit(es(quantity="2")))
    assert str(refused.value) == (
        "paper broker: buy 2 ESZ2026 at 5000 ×50 needs 500,000.00 of buying power"
        " (longs are paid in full, no margin); 300,000.00 available"
    )
    assert run(broker.submit(es("f2", quantity="1"))).status is OrderStatus.FILLED  # 250,000
    journal.close()


def test_a_short_future_needs_reg_t_margin_on_its_whole_value(tmp_path):
    broker, journal = futures_paper(tmp_path, cash="300000")
    run(broker.observe_price("ESZ2026", D(5000)))
    # one ES short is 250,000 of value: 125,000 of margin, and its proceeds stay as collateral
    assert run(broker.submit(es(side=Side.SELL, quantity="2"))).status is OrderStatus.FILLED
    assert run(broker.account()).buying_power == D(800000) - D(750000)
    with pytest.raises(OrderRejected, match=r"needs 125,000\.00 of buying power"):
        run(broker.submit(es("f2", Side.SELL, "1")))
    journal.close()


@pytest.mark.parametrize(
    ("ticker", "given", "mark"),
    [
        ("ESZ2026", "5000.1", "5000"),  # ES trades in quarters
        ("ESZ2026", "5000.2", "5000.25"),
        ("AAPL", "100.005", "100.00"),  # half to even
        ("AAPL", "100.006", "100.01"),
        ("PENNY", "0.12345", "0.1234"),
    ],
)
def test_a_mark_sits_on_the_instruments_tick(tmp_path, ticker, given, mark):
    # A signalPrice of 5000.1 on ES set the mark between ticks and market orders filled there
    broker, journal = futures_paper(tmp_path)
    run(broker.observe_price(ticker, D(given)))
    assert run(broker.quote(ticker)) == D(mark)
    state = run(broker.submit(es(ticker=ticker)))
    assert state.average_fill_price == D(mark)
    journal.close()
