"""Prices (SPEC §7): relative and absolute take-profit / stop-loss, wrong sides, tick rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.orders import OrderType, Side
from tradepipe.prices import ExitLeg, round_to_tick, stop_loss_leg, take_profit_leg
from tradepipe.signal import StopLoss, StopLossType, TakeProfit

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
