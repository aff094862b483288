"""Position logic (SPEC §6) for buy, sell, exit, add, reverse and cancel: pure tables."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.orders import OrderRole, OrderType, Side
from tradepipe.plan import (
    Market,
    Plan,
    PlannedOrder,
    Reject,
    Skip,
    make_plan,
    plan_from_json,
    plan_to_json,
)
from tradepipe.resolve import resolve_signal
from tradepipe.signal import Action, QuantityType, Sentiment, Signal

D = Decimal


def intent(action: str, quantity: str | None = None, sentiment: str | None = None, **settings):
    """An intent as a subscription with `settings` resolves it (no strategy defaults)."""
    signal = Signal(
        ticker="AAPL",
        action=Action(action),
        sentiment=Sentiment(sentiment) if sentiment else None,
        quantity=D(quantity) if quantity else None,
        quantity_type=settings.pop("signal_quantity_type", None),
    )
    subscription = type("Sub", (), settings)()
    resolved = resolve_signal(signal, subscription, None)
    return resolved


def orders(decision) -> list[tuple[str, Side, Decimal, bool]]:
    assert isinstance(decision, Plan), decision
    return [(o.leg, o.side, o.quantity, o.wait_for_fill) for o in decision.orders]


BUY, SELL = Side.BUY, Side.SELL

# (id, action, signal quantity, sentiment, position, settings, expected orders or Skip/Reject text)
CASES = [
    ("buy-flat-enters-long", "buy", "5", None, 0, {}, [("entry", BUY, D(5), False)]),
    ("sell-flat-enters-short", "sell", "5", None, 0, {}, [("entry", SELL, D(5), False)]),
    (
        "buy-long-skips-already-long",
        "buy",
        "5",
        None,
        3,
        {},
        Skip("already long 3 (allow_add = false)"),
    ),
    (
        "buy-long-adds-when-allowed",
        "buy",
        "5",
        None,
        3,
        {"allow_add": True},
        [("entry", BUY, D(5), False)],
    ),
    (
        "buy-short-exits-then-enters",
        "buy",
        "5",
        None,
        -3,
        {},
        [("exit", BUY, D(3), True), ("entry", BUY, D(5), False)],
    ),
    (
        "sell-long-exits-then-enters",
        "sell",
        "2",
        None,
        4,
        {},
        [("exit", SELL, D(4), True), ("entry", SELL, D(2), False)],
    ),
    (
        "buy-short-subtract-exit-quantity",
        "buy",
        "10",
        None,
        -4,
        {"subtract_exit_quantity": True},
        [("exit", BUY, D(4), True), ("entry", BUY, D(6), False)],
    ),
    (
        "buy-short-subtract-leaves-nothing",
        "buy",
        "4",
        None,
        -4,
        {"subtract_exit_quantity": True},
        [("exit", BUY, D(4), False)],
    ),
    (
        "buy-short-no-swap-exits-only",
        "buy",
        "5",
        None,
        -3,
        {"allow_side_swap": False},
        [("exit", BUY, D(3), False)],
    ),
    (
        "buy-short-short-only-exits-only",
        "buy",
        "5",
        None,
        -3,
        {"sides": "short"},
        [("exit", BUY, D(3), False)],
    ),
    (
        "sell-flat-long-only-skips",
        "sell",
        "5",
        None,
        0,
        {"sides": "long"},
        Skip("sides = long: a sell does not open a short position"),
    ),
    (
        "buy-flat-sentiment-flat-rejects",
        "buy",
        None,
        "flat",
        0,
        {},
        Reject("buy with sentiment flat: no short position to exit"),
    ),
    (
        "buy-long-sentiment-flat-rejects",
        "buy",
        None,
        "flat",
        5,
        {},
        Reject("buy with sentiment flat: no short position to exit"),
    ),
    (
        "buy-short-sentiment-flat-exits-all",
        "buy",
        "1",
        "flat",
        -5,
        {},
        [("exit", BUY, D(5), False)],
    ),
    (
        "buy-short-bearish-partial-cover",
        "buy",
        "2",
        "bearish",
        -5,
        {},
        [("exit", BUY, D(2), False)],
    ),
    ("buy-short-bearish-cover-capped", "buy", "9", "bearish", -5, {}, [("exit", BUY, D(5), False)]),
    (
        "buy-flat-bearish-rejects",
        "buy",
        "2",
        "bearish",
        0,
        {},
        Reject("buy with sentiment bearish: a partial exit needs a short position"),
    ),
    ("exit-flat-rejects", "exit", None, None, 0, {}, Reject("no open position to exit")),
    ("exit-long-closes-all", "exit", None, None, 7, {}, [("exit", SELL, D(7), False)]),
    ("exit-short-closes-all", "exit", None, None, -7, {}, [("exit", BUY, D(7), False)]),
    ("exit-partial-by-quantity", "exit", "3", None, 7, {}, [("exit", SELL, D(3), False)]),
    (
        "exit-quantity-above-position-closes-all",
        "exit",
        "30",
        None,
        7,
        {},
        [("exit", SELL, D(7), False)],
    ),
    (
        "exit-sentiment-flat-ignores-quantity",
        "exit",
        "1",
        "flat",
        2,
        {},
        [("exit", SELL, D(2), False)],
    ),
    (
        "reverse-sentiment-flat-only-exits",
        "reverse",
        "2",
        "flat",
        3,
        {},
        [("exit", SELL, D(3), False)],
    ),
    (
        "exit-ignored",
        "exit",
        None,
        None,
        7,
        {"ignore_exits": True},
        Skip("exits are ignored (ignore_exits = true)"),
    ),
    ("add-flat-rejects", "add", "2", None, 0, {}, Reject("no open position to add to")),
    ("add-long-adds-long", "add", "2", None, 3, {}, [("entry", BUY, D(2), False)]),
    ("add-short-adds-short", "add", "2", None, -3, {}, [("entry", SELL, D(2), False)]),
    ("reverse-flat-rejects", "reverse", "2", None, 0, {}, Reject("no open position to reverse")),
    (
        "reverse-long-goes-short",
        "reverse",
        "2",
        None,
        3,
        {},
        [("exit", SELL, D(3), True), ("entry", SELL, D(2), False)],
    ),
    (
        "reverse-obeys-sides-exit-only",
        "reverse",
        "2",
        None,
        3,
        {"sides": "long"},
        [("exit", SELL, D(3), False)],
    ),
    (
        "cancel-without-orders-rejects",
        "cancel",
        None,
        None,
        0,
        {},
        Reject("no open orders for AAPL to cancel"),
    ),
]


@pytest.mark.parametrize(
    ("action", "quantity", "sentiment", "position", "settings", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_position_logic_table(action, quantity, sentiment, position, settings, expected):
    decision = make_plan(
        intent(action, quantity, sentiment, **settings), Market(position=D(position))
    )
    if isinstance(expected, Skip | Reject):
        assert decision == expected
    else:
        assert orders(decision) == expected


def test_plan_when_default_quantity_and_signal_has_none_then_enters_one():
    decision = make_plan(intent("buy"), Market(position=D(0)))
    assert orders(decision) == [("entry", BUY, D(1), False)]


def test_plan_when_open_orders_and_cancel_enabled_then_cancels_first():
    decision = make_plan(intent("buy", "1"), Market(position=D(0), has_open_orders=True))
    assert isinstance(decision, Plan) and decision.cancel_open_orders


def test_plan_when_cancel_flag_false_then_keeps_open_orders():
    decision = make_plan(
        intent("buy", "1", cancel_open_orders=False), Market(position=D(0), has_open_orders=True)
    )
    assert isinstance(decision, Plan) and not decision.cancel_open_orders


def test_plan_cancel_action_with_open_orders_plans_only_the_cancel():
    decision = make_plan(intent("cancel"), Market(position=D(0), has_open_orders=True))
    assert isinstance(decision, Plan)
    assert decision.cancel_open_orders and decision.orders == ()


def test_plan_exit_by_percent_of_position_rounds_down():
    resolved = intent("exit", "50", signal_quantity_type=QuantityType.PERCENT_OF_POSITION)
    assert orders(make_plan(resolved, Market(position=D(7)))) == [("exit", SELL, D(3), False)]


def test_plan_exit_percent_that_rounds_to_zero_is_rejected():
    resolved = intent("exit", "10", signal_quantity_type=QuantityType.PERCENT_OF_POSITION)
    decision = make_plan(resolved, Market(position=D(5)))
    assert decision == Reject(
        "exit quantity: quantity 0.5 rounds to 0 whole units (fractional trading is off)"
    )


def test_plan_limit_entry_without_limit_price_is_rejected_not_sent():
    resolved = replace(intent("buy", "1"), entry_order_type=OrderType.LIMIT)
    assert make_plan(resolved, Market(position=D(0))) == Reject(
        "a limit entry order needs limitPrice"
    )


def test_plan_limit_entry_carries_the_limit_price():
    resolved = replace(intent("buy", "1"), entry_order_type=OrderType.LIMIT, limit_price=D("190.5"))
    decision = make_plan(resolved, Market(position=D(0)))
    assert isinstance(decision, Plan)
    (order,) = decision.orders
    assert (order.order_type, order.limit_price, order.role) == (
        OrderType.LIMIT,
        D("190.5"),
        OrderRole.ENTRY,
    )


def test_plan_dollar_amount_sizes_from_the_reference_price():
    resolved = intent("buy", "1000", signal_quantity_type=QuantityType.DOLLAR_AMOUNT)
    decision = make_plan(resolved, Market(position=D(0), reference_price=D(190)))
    assert orders(decision) == [("entry", BUY, D(5), False)]


def test_plan_dollar_amount_without_a_price_is_rejected():
    resolved = intent("buy", "1000", signal_quantity_type=QuantityType.DOLLAR_AMOUNT)
    decision = make_plan(resolved, Market(position=D(0)))
    assert isinstance(decision, Reject) and "needs a reference price" in decision.reason


positions = st.integers(min_value=-1000, max_value=1000).map(D)
quantities = st.one_of(st.none(), st.integers(min_value=1, max_value=2000).map(str))
actions = st.sampled_from(["buy", "sell", "exit", "add", "reverse"])
sentiments = st.sampled_from([None, "flat", "bullish", "bearish"])


@given(
    action=actions,
    quantity=quantities,
    sentiment=sentiments,
    position=positions,
    allow_add=st.booleans(),
    swap=st.booleans(),
    subtract=st.booleans(),
    sides=st.sampled_from(["both", "long", "short"]),
)
def test_plan_properties(action, quantity, sentiment, position, allow_add, swap, subtract, sides):
    if action == "add" and sentiment == "flat":
        sentiment = None
    resolved = intent(
        action,
        quantity,
        sentiment,
        allow_add=allow_add,
        allow_side_swap=swap,
        subtract_exit_quantity=subtract,
        sides=sides,
    )
    decision = make_plan(resolved, Market(position=position))
    assert json.loads(json.dumps(plan_to_json(decision))) == plan_to_json(decision)
    if not isinstance(decision, Plan):
        assert decision.reason
        return
    assert plan_from_json(json.loads(json.dumps(plan_to_json(decision)))) == decision
    after = position
    for order in decision.orders:
        assert order.quantity > 0  # no planned quantity is ever ≤ 0
        before = after
        after += order.quantity * order.side.sign
        if order.leg == "exit":
            assert abs(after) <= abs(before)  # an exit never grows the position
            assert after == 0 or (after > 0) == (before > 0)  # nor crosses zero
    if sentiment == "flat" or (action == "exit" and quantity is None):
        assert after == 0  # flat ends flat (or was rejected above)


def test_a_plan_with_prices_is_plain_json_and_reads_back_unchanged():
    """`replay ID --json` (and the daemon's answer) failed on every plan with an order:
    "Object of type Decimal is not JSON serializable"."""
    plan = Plan(
        summary="enter long 5 (buy 5 AAPL)",
        cancel_open_orders=False,
        orders=(
            PlannedOrder("entry", BUY, D("5"), OrderRole.ENTRY),
            PlannedOrder(
                "tp",
                SELL,
                D("5"),
                OrderRole.TAKE_PROFIT,
                OrderType.LIMIT,
                limit_price=D("110.50"),
                parent_leg="entry",
            ),
            PlannedOrder(
                "sl",
                SELL,
                D("0.5"),
                OrderRole.STOP_LOSS,
                OrderType.TRAILING_STOP,
                trail_percent=D("1E-7"),
                parent_leg="entry",
            ),
        ),
    )
    text = json.dumps(plan_to_json(plan))
    assert plan_from_json(json.loads(text)) == plan
    (_, take_profit, stop_loss) = json.loads(text)["orders"]
    assert (take_profit["side"], take_profit["limit_price"]) == ("sell", "110.5")
    assert stop_loss["trail_percent"] == "0.0000001"  # plain notation, never 1E-7
