"""A new paper order whose end is known where it meets the mark (it fills whole at once, or it
is refused or canceled) has its row written once, already in that state: one INSERT, no UPDATE
of the same row in the same call (issue 15: one statement fewer per filled paper order). What
the broker answers is what reading the row and its fills back answers. Orders that rest (a
limit that does not cross, a held bracket leg, a trailing stop) are inserted working and
updated when they change, as before."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from decimal import Decimal as D

import pytest

from tests.helpers import FixedClock
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.faults import Fault
from tradepipe.core.model import OrderRequest, OrderState, OrderStatus, OrderType, Side, TimeInForce
from tradepipe.errors import BrokerUnavailable
from tradepipe.journal import Journal

_INSERT = re.compile(
    r"INSERT INTO paper_orders \(account, client_order_id,.*?VALUES \('[^']*', '([^']*)'"
)
_UPDATE = re.compile(
    r"UPDATE paper_orders SET .* WHERE account = '[^']*' AND client_order_id = '([^']*)'"
)


def order(cid: str, side: Side = Side.BUY, **extra) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, account="paper", ticker="AAPL", side=side, quantity=D(5), **extra
    )


def limit(cid: str, side: Side, price: str, **extra) -> OrderRequest:
    return order(cid, side, order_type=OrderType.LIMIT, limit_price=D(price), **extra)


@pytest.fixture
def paper(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    asyncio.run(broker.connect())
    yield broker
    journal.close()


def writes(broker: PaperBroker, call) -> tuple[object, list[tuple[str, str]]]:
    """The call's answer, and its writes of paper order rows: (INSERT or UPDATE, order id)."""
    statements: list[str] = []
    conn = broker.ledger.journal.conn
    conn.set_trace_callback(statements.append)
    try:
        answer = asyncio.run(call)
    finally:
        conn.set_trace_callback(None)
    found = []
    for statement in statements:
        if match := _INSERT.match(statement):
            found.append(("INSERT", match[1]))
        elif match := _UPDATE.match(statement):
            found.append(("UPDATE", match[1]))
        else:
            assert not re.match(r"(INSERT|UPDATE).*paper_orders", statement), statement
    return answer, found


def read_back(broker: PaperBroker, cid: str) -> OrderState:
    state = asyncio.run(broker.get_order(cid))
    assert state is not None
    return state


# (name, the mark (None: no mark yet), the new order, its state, its fill price, its message)
ENDS_AT_ONCE = [
    ("market", "100", order("c"), OrderStatus.FILLED, D(100), None),
    ("marketable-limit", "100", limit("c", Side.BUY, "105"), OrderStatus.FILLED, D(100), None),
    (
        "triggered-stop",
        "100",
        order("c", Side.SELL, order_type=OrderType.STOP, stop_price=D(101)),
        OrderStatus.FILLED,
        D(100),
        None,
    ),
    ("market-no-mark", None, order("c"), OrderStatus.REJECTED, None, "paper quote paper AAPL"),
    (
        "ioc-not-crossing",
        "100",
        limit("c", Side.BUY, "90", time_in_force=TimeInForce.IOC),
        OrderStatus.CANCELED,
        None,
        "did not cross the mark",
    ),
]


@pytest.mark.parametrize(
    ("mark", "request_", "status", "price", "message"),
    [case[1:] for case in ENDS_AT_ONCE],
    ids=[case[0] for case in ENDS_AT_ONCE],
)
def test_an_order_that_ends_where_it_meets_the_mark_is_written_once(
    paper, mark, request_, status, price, message
):
    if mark is not None:
        asyncio.run(paper.observe_price("AAPL", D(mark)))
    answer, found = writes(paper, paper.submit(request_))
    assert found == [("INSERT", "c")]
    assert isinstance(answer, OrderState) and answer == read_back(paper, "c")
    assert (answer.status, answer.average_fill_price) == (status, price)
    assert message in (answer.message or "") if message else answer.message is None
    if status is OrderStatus.FILLED:
        assert answer.filled_quantity == D(5)
        assert [(f.quantity, f.price) for f in answer.fills] == [(D(5), price)]
        held = -5 if request_.side is Side.SELL else 5
        assert asyncio.run(paper.position("AAPL")).quantity == held
    row = paper.ledger.journal.paper_order("paper", "c")
    assert row is not None and row["created_at"] == row["updated_at"]
    assert asyncio.run(paper.open_orders()) == []  # not left among the working orders


def test_a_resting_order_is_inserted_working_and_updated_when_a_mark_fills_it(paper):
    asyncio.run(paper.observe_price("AAPL", D(100)))
    answer, found = writes(paper, paper.submit(limit("c", Side.BUY, "95")))
    assert found == [("INSERT", "c")] and answer.status is OrderStatus.ACCEPTED
    assert asyncio.run(paper.open_orders()) == [answer]
    (changed,), found = writes(paper, paper.observe_price("AAPL", D(94)))
    assert found == [("UPDATE", "c")]
    assert changed == read_back(paper, "c")
    assert (changed.status, changed.average_fill_price) == (OrderStatus.FILLED, D(95))


def test_a_bracket_whose_entry_fills_at_once_writes_the_entry_once_and_releases_its_legs(paper):
    asyncio.run(paper.observe_price("AAPL", D(100)))
    take = limit("t", Side.SELL, "110")
    stop = order("s", Side.SELL, order_type=OrderType.STOP, stop_price=D(90))
    answers, found = writes(paper, paper.submit_bracket(order("e"), (take, stop)))
    # The legs are inserted held, then released by the entry's fill.
    assert found == [
        ("INSERT", "e"),
        ("INSERT", "t"),
        ("INSERT", "s"),
        ("UPDATE", "t"),
        ("UPDATE", "s"),
    ]
    assert answers == [read_back(paper, cid) for cid in ("e", "t", "s")]
    assert [a.status for a in answers] == [OrderStatus.FILLED, *[OrderStatus.ACCEPTED] * 2]
    changed = asyncio.run(paper.observe_price("AAPL", D(111)))  # the legs are live: OCO
    assert {s.client_order_id: s.status for s in changed} == {
        "t": OrderStatus.FILLED,
        "s": OrderStatus.CANCELED,
    }


def test_a_refused_bracket_entry_is_written_once_and_cancels_its_held_legs(paper):
    answers, found = writes(paper, paper.submit_bracket(order("e"), (limit("t", Side.SELL, "1"),)))
    assert found == [("INSERT", "e"), ("INSERT", "t"), ("UPDATE", "t")]
    assert answers == [read_back(paper, cid) for cid in ("e", "t")]
    assert [a.status for a in answers] == [OrderStatus.REJECTED, OrderStatus.CANCELED]


def test_a_replacement_that_fills_at_once_is_written_once(paper):
    asyncio.run(paper.observe_price("AAPL", D(100)))
    asyncio.run(paper.submit(limit("w", Side.BUY, "90")))
    moved = replace(limit("w", Side.BUY, "101"), client_order_id="w2")
    answer, found = writes(paper, paper.replace("w", moved))
    assert found == [("UPDATE", "w"), ("INSERT", "w2")]  # the old one canceled, the new filled
    assert answer == read_back(paper, "w2")
    assert (answer.status, answer.average_fill_price) == (OrderStatus.FILLED, D(100))
    assert read_back(paper, "w").status is OrderStatus.CANCELED


def test_a_filled_order_whose_answer_is_lost_is_booked_once_and_answered_again(paper):
    asyncio.run(paper.observe_price("AAPL", D(100)))
    paper.inject(Fault.TIMEOUT, "no answer")
    with pytest.raises(BrokerUnavailable, match="no answer"):
        asyncio.run(paper.submit(order("c")))
    conn = paper.ledger.journal.conn
    changes = conn.total_changes
    again = asyncio.run(paper.submit(order("c")))  # the same id: answered, not booked again
    assert conn.total_changes == changes  # no row written (its insert met the taken id)
    assert again == read_back(paper, "c") and again.status is OrderStatus.FILLED
    assert asyncio.run(paper.position("AAPL")).quantity == 5


@pytest.mark.parametrize("spent", [False, True])
def test_a_retried_order_id_is_answered_with_its_state_and_writes_nothing(paper, spent):
    """With no fault waiting, whether an order is new is learnt from its insert (no read
    first): a taken id writes nothing and is answered with what the order came to, even when
    the checks would now refuse it (the first one spent the cash a second would need)."""
    asyncio.run(paper.observe_price("AAPL", D(100)))
    big = replace(order("c"), quantity=D(60) if spent else D(5))  # 6,000 of the 10,000 cash
    first = asyncio.run(paper.submit(big))
    conn = paper.ledger.journal.conn
    changes = conn.total_changes
    again = asyncio.run(paper.submit(big))
    assert conn.total_changes == changes
    assert again == first == read_back(paper, "c") and again.status is OrderStatus.FILLED
    assert asyncio.run(paper.position("AAPL")).quantity == big.quantity
