"""Prices (SPEC §7): relative and absolute take-profit / stop-loss, wrong sides, tick rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.model import OrderType, Side
from tradepipe.core.prices import ExitLeg, round_to_tick, stock_tick, stop_loss_leg, take_profit_leg
from tradepipe.core.signal import StopLoss, StopLossType, TakeProfit

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


@pytest.mark.parametrize(
    ("take_profit", "side", "reference", "expected"),
    [
        (TakeProfit(percent=D(5)), BUY, D(100), ExitLeg(OrderType.LIMIT, limit_price=D(105))),
        (TakeProfit(amount=D(3)), BUY, D(100), ExitLeg(OrderType.LIMIT, limit_price=D(103))),
        (TakeProfit(limit_price=D(110)), BUY, D(100), ExitLeg(OrderType.LIMIT, limit_price=D(110))),
        (TakeProfit(percent=D(5)), SELL, D(100), ExitLeg(OrderType.LIMIT, limit_price=D(95))),
        (TakeProfit(amount=D(3)), SELL, D(100), ExitLeg(OrderType.LIMIT, limit_price=D(97))),
        (
            TakeProfit(percent=D(1)),
            BUY,
            D("123.456"),
            ExitLeg(OrderType.LIMIT, limit_price=D("124.70")),
        ),
        (
            TakeProfit(limit_price=D(90)),
            BUY,
            D(100),
            "take-profit 90 must be above the entry price 100",
        ),
        (
            TakeProfit(limit_price=D(110)),
            SELL,
            D(100),
            "take-profit 110 must be below the entry price 100",
        ),
    ],
    ids=[
        "long-percent",
        "long-amount",
        "long-absolute",
        "short-percent",
        "short-amount",
        "rounds-sell-up",
        "long-wrong-side",
        "short-wrong-side",
    ],
)
def test_take_profit(take_profit, side, reference, expected):
    assert take_profit_leg(take_profit, side, reference) == expected


@pytest.mark.parametrize(
    ("stop_loss", "side", "reference", "expected"),
    [
        (StopLoss(percent=D(2)), BUY, D(100), ExitLeg(OrderType.STOP, stop_price=D(98))),
        (StopLoss(amount=D(5)), BUY, D(100), ExitLeg(OrderType.STOP, stop_price=D(95))),
        (StopLoss(stop_price=D(90)), BUY, D(100), ExitLeg(OrderType.STOP, stop_price=D(90))),
        (StopLoss(percent=D(2)), SELL, D(100), ExitLeg(OrderType.STOP, stop_price=D(102))),
        (
            StopLoss(type=StopLossType.STOP_LIMIT, stop_price=D(95), limit_price=D("94.5")),
            BUY,
            D(100),
            ExitLeg(OrderType.STOP_LIMIT, limit_price=D("94.50"), stop_price=D(95)),
        ),
        (
            StopLoss(type=StopLossType.TRAILING_STOP, trail_percent=D(3)),
            BUY,
            D(100),
            ExitLeg(OrderType.TRAILING_STOP, trail_percent=D(3)),
        ),
        (
            StopLoss(stop_price=D(101)),
            BUY,
            D(100),
            "stop-loss 101 must be below the entry price 100",
        ),
        (
            StopLoss(stop_price=D(99)),
            SELL,
            D(100),
            "stop-loss 99 must be above the entry price 100",
        ),
        (
            StopLoss(amount=D(150)),
            BUY,
            D(100),
            "stop-loss -50 is not a price (the offset is larger than the entry 100)",
        ),
    ],
    ids=[
        "long-percent",
        "long-amount",
        "long-absolute",
        "short-percent",
        "stop-limit",
        "trailing",
        "long-wrong-side",
        "short-wrong-side",
        "below-zero",
    ],
)
def test_stop_loss(stop_loss, side, reference, expected):
    assert stop_loss_leg(stop_loss, side, reference) == expected


@pytest.mark.parametrize(
    ("price", "side", "expected"),
    [
        (D("10.005"), BUY, D("10.00")),
        (D("10.005"), SELL, D("10.01")),
        (D("0.123456"), BUY, D("0.1234")),
        (D("0.123456"), SELL, D("0.1235")),
        (D("10.01"), BUY, D("10.01")),
    ],
    ids=["buy-down", "sell-up", "sub-dollar-buy", "sub-dollar-sell", "on-tick"],
)
def test_round_to_tick(price, side, expected):
    assert round_to_tick(price, side) == expected


prices = st.decimals(min_value=D("0.0001"), max_value=D(100000), places=6)


@given(price=prices)
def test_rounding_never_moves_a_buy_up_or_a_sell_down(price):
    assert round_to_tick(price, BUY) <= price <= round_to_tick(price, SELL)


@given(
    reference=st.decimals(min_value=D(1), max_value=D(10000), places=2),
    percent=st.decimals(min_value=D("0.1"), max_value=D(50), places=2),
    side=st.sampled_from([BUY, SELL]),
)
def test_relative_legs_are_on_the_right_side(reference, percent, side):
    take = take_profit_leg(TakeProfit(percent=percent), side, reference)
    stop = stop_loss_leg(StopLoss(percent=percent), side, reference)
    if isinstance(take, ExitLeg):
        assert (take.limit_price > reference) if side is BUY else (take.limit_price < reference)
    if isinstance(stop, ExitLeg):
        assert (stop.stop_price < reference) if side is BUY else (stop.stop_price > reference)


# SPEC §12: a price that reaches a broker is > 0, protective legs sit on the right side, a
# stop-limit can fill, a trail is smaller than the price, percents above 100 need leverage.
# (id, leg, entry side, reference, allow_leverage, expected leg or the reason there is none)
SPEC_12_LEGS = [
    (
        "short-take-profit-150-percent",
        TakeProfit(percent=D(150)),
        SELL,
        D(100),
        False,
        "take-profit -50 is not a price (takeProfit.percent 150 from the entry 100 goes to or"
        " past 0)",
    ),
    (
        "short-take-profit-150-percent-leverage-changes-nothing",
        TakeProfit(percent=D(150)),
        SELL,
        D(100),
        True,
        "take-profit -50 is not a price",
    ),
    (
        "short-take-profit-amount-250",
        TakeProfit(amount=D(250)),
        SELL,
        D(100),
        False,
        "take-profit -150 is not a price (takeProfit.amount 250",
    ),
    (
        "short-take-profit-100-percent",
        TakeProfit(percent=D(100)),
        SELL,
        D(100),
        False,
        "take-profit 0 is not a price",
    ),
    (
        "short-take-profit-99-percent",
        TakeProfit(percent=D(99)),
        SELL,
        D(100),
        False,
        ExitLeg(OrderType.LIMIT, limit_price=D(1)),
    ),
    (
        "long-stop-limit-limit-above-stop",
        StopLoss(type=StopLossType.STOP_LIMIT, stop_price=D(90), limit_price=D(200)),
        BUY,
        D(100),
        False,
        "stop-loss limit 200 must be at or below its stop 90",
    ),
    (
        "long-stop-limit-limit-equal-stop",
        StopLoss(type=StopLossType.STOP_LIMIT, stop_price=D(90), limit_price=D(90)),
        BUY,
        D(100),
        False,
        ExitLeg(OrderType.STOP_LIMIT, limit_price=D(90), stop_price=D(90)),
    ),
    (
        "short-stop-limit-limit-below-stop",
        StopLoss(type=StopLossType.STOP_LIMIT, stop_price=D(110), limit_price=D(105)),
        SELL,
        D(100),
        False,
        "stop-loss limit 105 must be at or above its stop 110",
    ),
    (
        "short-stop-limit-fillable",
        StopLoss(type=StopLossType.STOP_LIMIT, stop_price=D(110), limit_price=D(111)),
        SELL,
        D(100),
        False,
        ExitLeg(OrderType.STOP_LIMIT, limit_price=D(111), stop_price=D(110)),
    ),
    (
        "trail-amount-huge",
        StopLoss(type=StopLossType.TRAILING_STOP, trail_amount=D("1e13")),
        BUY,
        D(100),
        True,
        "stopLoss.trailAmount 10000000000000 is not below the price 100",
    ),
    (
        "trail-amount-equal-price",
        StopLoss(type=StopLossType.TRAILING_STOP, trail_amount=D(100)),
        SELL,
        D(100),
        False,
        "stopLoss.trailAmount 100 is not below the price 100",
    ),
    (
        "long-trail-percent-100",
        StopLoss(type=StopLossType.TRAILING_STOP, trail_percent=D(100)),
        BUY,
        D(100),
        True,
        "stopLoss.trailPercent 100 must be below 100",
    ),
    (
        "short-trail-percent-150",
        StopLoss(type=StopLossType.TRAILING_STOP, trail_percent=D(150)),
        SELL,
        D(100),
        False,
        "stopLoss.trailPercent 150 is above 100, which needs leverage"
        " (set allow_leverage = true on the account to allow it)",
    ),
    (
        "short-trail-percent-150-leverage",
        StopLoss(type=StopLossType.TRAILING_STOP, trail_percent=D(150)),
        SELL,
        D(100),
        True,
        ExitLeg(OrderType.TRAILING_STOP, trail_percent=D(150)),
    ),
    (
        "short-stop-percent-150",
        StopLoss(percent=D(150)),
        SELL,
        D(100),
        False,
        "stopLoss.percent 150 is above 100, which needs leverage",
    ),
    (
        "short-stop-percent-150-leverage",
        StopLoss(percent=D(150)),
        SELL,
        D(100),
        True,
        ExitLeg(OrderType.STOP, stop_price=D(250)),
    ),
    (
        "long-stop-percent-100",
        StopLoss(percent=D(100)),
        BUY,
        D(100),
        False,
        "stop-loss 0 is not a price",
    ),
    (
        "long-stop-percent-150-leverage",
        StopLoss(percent=D(150)),
        BUY,
        D(100),
        True,
        "stop-loss -50 is not a price",
    ),
]


@pytest.mark.parametrize(
    ("leg", "side", "reference", "allow_leverage", "expected"),
    [case[1:] for case in SPEC_12_LEGS],
    ids=[case[0] for case in SPEC_12_LEGS],
)
def test_protective_legs_are_prices_on_the_right_side(
    leg, side, reference, allow_leverage, expected
):
    if isinstance(leg, TakeProfit):
        got = take_profit_leg(leg, side, reference)
    else:
        got = stop_loss_leg(leg, side, reference, allow_leverage=allow_leverage)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got, got
    else:
        assert got == expected


@given(
    reference=st.decimals(min_value=D("0.0001"), max_value=D(100000), places=4),
    percent=st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
    amount=st.decimals(min_value=D("0.0001"), max_value=D(200000), places=4),
    side=st.sampled_from([BUY, SELL]),
    tick=st.sampled_from([None, D("0.25"), D("0.01"), D("0.5")]),
    leverage=st.booleans(),
)
def test_no_leg_is_a_price_at_or_below_zero_or_off_the_tick(
    reference, percent, amount, side, tick, leverage
):
    legs = [
        take_profit_leg(TakeProfit(percent=percent), side, reference, tick),
        take_profit_leg(TakeProfit(amount=amount), side, reference, tick),
        stop_loss_leg(StopLoss(percent=percent), side, reference, tick, allow_leverage=leverage),
        stop_loss_leg(StopLoss(amount=amount), side, reference, tick, allow_leverage=leverage),
    ]
    for leg in legs:
        if isinstance(leg, str):
            continue
        for price in (leg.limit_price, leg.stop_price):
            if price is not None:
                assert price > 0
                assert price % (tick or stock_tick(price)) == 0
        if leg.stop_price is not None:
            assert (leg.stop_price < reference) if side is BUY else (leg.stop_price > reference)
        if leg.limit_price is not None:
            assert (leg.limit_price > reference) if side is BUY else (leg.limit_price < reference)
