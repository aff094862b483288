"""Position logic (SPEC §6) for buy, sell, exit, add, reverse and cancel: pure tables."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.plan import (
    Market,
    Plan,
    PlannedOrder,
    Reject,
    Skip,
    make_plan,
    plan_from_json,
    plan_to_json,
)
from tradepipe.core.prices import stock_tick
from tradepipe.core.resolve import resolve_signal
from tradepipe.core.signal import (
    Action,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    StopLossType,
    TakeProfit,
)

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


# ---- SPEC §12: every planned price is a price, on the tick; percents above 100 need leverage


def signal_intent(action: str = "buy", settings: dict | None = None, **fields):
    """An intent from a signal carrying `fields` (Signal attribute names)."""
    signal = Signal(ticker="AAPL", action=Action(action), **fields)
    return resolve_signal(signal, type("Sub", (), settings or {})(), None)


def first_order(decision):
    assert isinstance(decision, Plan), decision
    order = decision.orders[-1]
    return (order.order_type, order.side, order.quantity, order.limit_price, order.stop_price)


LIMIT, STOP, STOP_LIMIT, TRAIL = (
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
    OrderType.TRAILING_STOP,
)
TP, SL = ("take_profit",), ("stop_loss",)

# (id, action, signal fields, market, expected last order or Reject text)
SPEC_12_PLANS = [
    (
        "buy-limit-rounds-down",
        "buy",
        {"order_type": LIMIT, "limit_price": D("100.005"), "quantity": D(2)},
        {},
        (LIMIT, BUY, D(2), D("100.00"), None),
    ),
    (
        "sell-limit-rounds-up",
        "sell",
        {"order_type": LIMIT, "limit_price": D("100.005"), "quantity": D(2)},
        {},
        (LIMIT, SELL, D(2), D("100.01"), None),
    ),
    (
        "buy-stop-rounds-down-on-the-instrument-tick",
        "buy",
        {"order_type": STOP, "stop_price": D("4012.6"), "quantity": D(1)},
        {"tick_size": D("0.25")},
        (STOP, BUY, D(1), None, D("4012.50")),
    ),
    (
        "sell-stop-limit-rounds-up-on-the-instrument-tick",
        "sell",
        {"order_type": STOP_LIMIT, "stop_price": D("4012.6"), "limit_price": D("4012.1")},
        {"tick_size": D("0.25")},
        (STOP_LIMIT, SELL, D(1), D("4012.25"), D("4012.75")),
    ),
    (
        "limit-below-the-tick-rounds-to-zero",
        "buy",
        {"order_type": LIMIT, "limit_price": D("0.00001")},
        {},
        "limitPrice 0.00001 rounds to 0: not a price",
    ),
    (
        "buy-stop-limit-limit-below-stop",
        "buy",
        {"order_type": STOP_LIMIT, "stop_price": D(100), "limit_price": D(99)},
        {"reference_price": D(95)},
        "the stop_limit entry order's limit 99 must be at or above its stop 100",
    ),
    (
        "sell-stop-limit-limit-above-stop",
        "sell",
        {"order_type": STOP_LIMIT, "stop_price": D(100), "limit_price": D(101)},
        {"reference_price": D(105)},
        "the stop_limit entry order's limit 101 must be at or below its stop 100",
    ),
    (
        "trailing-entry-amount-1e13",
        "buy",
        {"order_type": TRAIL, "trail_amount": D("1e13")},
        {"reference_price": D(100), "allow_leverage": True},
        "trailAmount 10000000000000 is not below the price 100: a trail that large is no stop",
    ),
    (
        "trailing-sell-percent-100",
        "sell",
        {"order_type": TRAIL, "trail_percent": D(100)},
        {"reference_price": D(100), "allow_leverage": True},
        "trailPercent 100 must be below 100",
    ),
    (
        "trailing-buy-percent-150-without-leverage",
        "buy",
        {"order_type": TRAIL, "trail_percent": D(150)},
        {"reference_price": D(100)},
        "trailPercent 150 is above 100, which needs leverage",
    ),
    (
        "long-stop-limit-limit-200-above-stop-90",
        "buy",
        {
            "signal_price": D(100),
            "stop_loss": StopLoss(
                type=StopLossType.STOP_LIMIT, stop_price=D(90), limit_price=D(200)
            ),
        },
        {"reference_price": D(100)},
        "stop-loss limit 200 must be at or below its stop 90",
    ),
    (
        "short-take-profit-150-percent",
        "sell",
        {"take_profit": TakeProfit(percent=D(150))},
        {"reference_price": D(100)},
        "take-profit -50 is not a price",
    ),
    (
        "short-take-profit-amount-250",
        "sell",
        {"take_profit": TakeProfit(amount=D(250))},
        {"reference_price": D(100)},
        "take-profit -150 is not a price",
    ),
    (
        "risk-percent-500",
        "buy",
        {
            "quantity": D(500),
            "quantity_type": QuantityType.RISK_PERCENT,
            "stop_loss": StopLoss(percent=D(10)),
        },
        {"reference_price": D(100), "equity": D(1000)},
        "entry quantity: quantity (risk_percent) 500 is above 100, which needs leverage"
        " (set allow_leverage = true on the account to allow it)",
    ),
    (
        "risk-percent-500-with-leverage",
        "buy",
        {
            "quantity": D(500),
            "quantity_type": QuantityType.RISK_PERCENT,
            "stop_loss": StopLoss(percent=D(10)),
        },
        {"reference_price": D(100), "equity": D(1000), "allow_leverage": True},
        (STOP, SELL, D(500), None, D(90)),
    ),
    (
        "percent-of-equity-10000",
        "buy",
        {"quantity": D(10000), "quantity_type": QuantityType.PERCENT_OF_EQUITY},
        {"reference_price": D(100), "equity": D(1000)},
        "entry quantity: quantity (percent_of_equity) 10000 is above 100",
    ),
    (
        "percent-of-equity-100",
        "buy",
        {"quantity": D(100), "quantity_type": QuantityType.PERCENT_OF_EQUITY},
        {"reference_price": D(100), "equity": D(1000)},
        (OrderType.MARKET, BUY, D(10), None, None),
    ),
    (
        "short-stop-loss-percent-150",
        "sell",
        {"stop_loss": StopLoss(percent=D(150))},
        {"reference_price": D(100)},
        "stopLoss.percent 150 is above 100, which needs leverage",
    ),
]


@pytest.mark.parametrize(
    ("action", "fields", "market", "expected"),
    [case[1:] for case in SPEC_12_PLANS],
    ids=[case[0] for case in SPEC_12_PLANS],
)
def test_plan_prices_tell_the_truth(action, fields, market, expected):
    decision = make_plan(signal_intent(action, **fields), Market(position=D(0), **market))
    if isinstance(expected, str):
        assert isinstance(decision, Reject), decision
        assert expected in decision.reason
    else:
        assert first_order(decision) == expected


def test_plan_breakeven_at_or_below_zero_is_rejected():
    resolved = signal_intent("breakeven", breakeven_offset=D("-1e13"))
    decision = make_plan(resolved, Market(position=D(5), average_price=D(100)))
    assert decision == Reject(
        "the breakeven stop -9999999999900 (average 100, offset -10000000000000) is not a price"
    )


def test_plan_stop_loss_from_settings_above_100_percent_needs_leverage():
    settings = {"stop_loss": {"percent": D(150)}}
    resolved = signal_intent("sell", settings)
    assert isinstance(make_plan(resolved, Market(position=D(0), reference_price=D(10))), Reject)
    leveraged = make_plan(
        resolved, Market(position=D(0), reference_price=D(10), allow_leverage=True)
    )
    assert first_order(leveraged) == (STOP, BUY, D(1), None, D(25))


order_types = st.sampled_from([None, *OrderType])
price_values = st.decimals(min_value=D("0.00001"), max_value=D(100000), places=5)
maybe_price = st.none() | price_values


@st.composite
def priced_signals(draw):
    fields = {
        "order_type": draw(order_types),
        "limit_price": draw(maybe_price),
        "stop_price": draw(maybe_price),
        "trail_amount": draw(maybe_price),
        "trail_percent": draw(st.none() | st.decimals(D("0.01"), D(500), places=2)),
        "signal_price": draw(maybe_price),
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(["limit_price", "percent", "amount"]))
        fields["take_profit"] = TakeProfit(**{key: draw(price_values)})
    if draw(st.booleans()):
        kind = draw(st.sampled_from(list(StopLossType)))
        if kind is StopLossType.TRAILING_STOP:
            key = draw(st.sampled_from(["trail_amount", "trail_percent"]))
            fields["stop_loss"] = StopLoss(type=kind, **{key: draw(price_values)})
        else:
            key = draw(st.sampled_from(["percent", "amount", "stop_price"]))
            limit = draw(price_values) if kind is StopLossType.STOP_LIMIT else None
            fields["stop_loss"] = StopLoss(
                type=kind, limit_price=limit, **{key: draw(price_values)}
            )
    return fields


@given(
    action=st.sampled_from(["buy", "sell", "exit", "reverse", "breakeven", "add"]),
    fields=priced_signals(),
    position=st.sampled_from([D(0), D(5), D(-5)]),
    average=price_values,
    tick=st.sampled_from([None, D("0.01"), D("0.25"), D(1)]),
    leverage=st.booleans(),
    offset=st.none() | st.decimals(D(-100000), D(100000), places=3),
)
def test_no_planned_order_has_a_price_at_or_below_zero_or_off_the_tick(
    action, fields, position, average, tick, leverage, offset
):
    resolved = signal_intent(action, breakeven_offset=offset, **fields)
    market = Market(
        position=position,
        average_price=average,
        reference_price=fields["signal_price"],
        tick_size=tick,
        allow_leverage=leverage,
    )
    decision = make_plan(resolved, market)
    if not isinstance(decision, Plan):
        return
    for order in decision.orders:
        for price in (order.limit_price, order.stop_price):
            if price is not None:
                assert price > 0, (order, decision)
                assert price % (tick or stock_tick(price)) == 0, (order, decision)
        for trail in (order.trail_amount, order.trail_percent):
            assert trail is None or trail > 0
        if order.order_type is OrderType.STOP_LIMIT:
            assert order.limit_price is not None and order.stop_price is not None
            if order.side is Side.SELL:
                assert order.limit_price <= order.stop_price
            else:
                assert order.limit_price >= order.stop_price
        if order.trail_percent is not None and not leverage:
            assert order.trail_percent <= 100
