"""Sizing (SPEC §7): every quantity type, lots, fractional, rounding down, zero refused. Pure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.plan import Market, Plan, Reject, make_plan
from tradepipe.core.resolve import resolve_signal
from tradepipe.core.signal import Action, QuantityType, Signal, StopLoss
from tradepipe.core.sizing import SizingInputs, round_to_lot, size

D = Decimal
Q = QuantityType


def inputs(
    kind,
    quantity,
    *,
    price="50",
    stop=None,
    equity=None,
    position="0",
    lot="1",
    frac=False,
    multiplier="1",
):
    return SizingInputs(
        quantity=D(quantity),
        quantity_type=kind,
        position=D(position),
        reference_price=D(price) if price else None,
        stop_price=D(stop) if stop else None,
        equity=D(equity) if equity else None,
        lot_size=D(lot),
        fractional=bool(frac),
        multiplier=D(multiplier),
    )


# (id, inputs, quantity or the reason)
CASES = [
    ("fixed", inputs(Q.FIXED_QUANTITY, "7"), D(7)),
    ("fixed-rounds-down-to-whole-units", inputs(Q.FIXED_QUANTITY, "7.9"), D(7)),
    ("fixed-fractional", inputs(Q.FIXED_QUANTITY, "0.5", lot="0.001", frac=True), D("0.5")),
    ("dollar-amount", inputs(Q.DOLLAR_AMOUNT, "1000", price="30"), D(33)),  # 33.33
    (
        "dollar-amount-fractional-to-the-lot",
        inputs(Q.DOLLAR_AMOUNT, "1000", price="30", lot="0.01", frac=True),
        D("33.33"),
    ),
    (
        "dollar-amount-lot-of-100",
        inputs(Q.DOLLAR_AMOUNT, "25000", price="10", lot="100"),
        D(2500),
    ),
    ("percent-of-equity", inputs(Q.PERCENT_OF_EQUITY, "10", equity="20000", price="40"), D(50)),
    # risk 200 over |50 - 48| = 2 per share
    ("risk-dollar-amount", inputs(Q.RISK_DOLLAR_AMOUNT, "200", stop="48"), D(100)),
    ("risk-dollar-amount-short", inputs(Q.RISK_DOLLAR_AMOUNT, "200", stop="52.5"), D(80)),
    # 1% of 30000 = 300 over 3 per share
    ("risk-percent", inputs(Q.RISK_PERCENT, "1", stop="47", equity="30000"), D(100)),
    ("percent-of-position", inputs(Q.PERCENT_OF_POSITION, "50", position="-9"), D(4)),
    (
        "zero-is-refused-with-the-numbers",
        inputs(Q.DOLLAR_AMOUNT, "20", price="30"),
        "quantity 0.666666 rounds to 0 whole units (fractional trading is off)",
    ),
    (
        "zero-fractional-is-refused-too",
        inputs(Q.DOLLAR_AMOUNT, "0.001", price="30", lot="0.001", frac=True),
        "quantity 0.000033 rounds to 0 units",
    ),
    (
        "dollar-amount-without-a-price",
        inputs(Q.DOLLAR_AMOUNT, "1000", price=None),
        "dollar_amount needs a reference price: send signalPrice or a limitPrice",
    ),
    (
        "percent-of-equity-without-equity",
        inputs(Q.PERCENT_OF_EQUITY, "10"),
        "percent_of_equity needs the account's equity, which the broker did not give",
    ),
    (
        "risk-without-a-stop",
        inputs(Q.RISK_DOLLAR_AMOUNT, "200"),
        "risk_dollar_amount needs a stop loss to measure the risk per unit",
    ),
    (
        "risk-with-the-stop-at-the-entry",
        inputs(Q.RISK_DOLLAR_AMOUNT, "200", stop="50"),
        "risk_dollar_amount: the stop 50 equals the entry price",
    ),
    (
        "risk-percent-without-equity",
        inputs(Q.RISK_PERCENT, "1", stop="47"),
        "risk_percent needs the account's equity, which the broker did not give",
    ),
    (
        "percent-of-position-when-flat",
        inputs(Q.PERCENT_OF_POSITION, "50"),
        "percent_of_position needs an open position",
    ),
    # SPEC §12: a unit of a future is worth its point value per point, so money-based types
    # divide by price × multiplier. ES (50 per point), risk 500 over a 10-point stop: 1 contract.
    (
        "es-risk-500-over-10-points-is-1-contract-never-50",
        inputs(Q.RISK_DOLLAR_AMOUNT, "500", price="5000", stop="4990", multiplier="50"),
        D(1),
    ),
    (  # MES, 5 per point: the same risk is 10 micro contracts
        "mes-risk-500-over-10-points-is-10-contracts",
        inputs(Q.RISK_DOLLAR_AMOUNT, "500", price="5000", stop="4990", multiplier="5"),
        D(10),
    ),
    (  # MYM, 0.5 per point: 500 over 20 points is 50 contracts
        "mym-half-a-dollar-per-point",
        inputs(Q.RISK_DOLLAR_AMOUNT, "500", price="40000", stop="40020", multiplier="0.5"),
        D(50),
    ),
    (  # one ES at 5000 is worth 250,000: 600,000 buys 2 (2.4)
        "es-dollar-amount",
        inputs(Q.DOLLAR_AMOUNT, "600000", price="5000", multiplier="50"),
        D(2),
    ),
    (  # 50% of 1,000,000 at 5000 × 50
        "es-percent-of-equity",
        inputs(Q.PERCENT_OF_EQUITY, "50", price="5000", equity="1000000", multiplier="50"),
        D(2),
    ),
    (  # 1% of 200,000 = 2,000 of risk; NQ 20 per point over 25 points = 500 per contract
        "nq-risk-percent",
        inputs(Q.RISK_PERCENT, "1", price="20000", stop="19975", equity="200000", multiplier="20"),
        D(4),
    ),
    (  # CL, 1000 per barrel-dollar: 1,000 of risk over 0.50 is 2 contracts
        "cl-risk-dollar-amount",
        inputs(Q.RISK_DOLLAR_AMOUNT, "1000", price="70.00", stop="69.50", multiplier="1000"),
        D(2),
    ),
    (  # an option contract is 100 shares: 1,000 at 3.15 buys 3 contracts
        "option-dollar-amount",
        inputs(Q.DOLLAR_AMOUNT, "1000", price="3.15", multiplier="100"),
        D(3),
    ),
    (  # the multiplier never touches a count of units
        "fixed-quantity-ignores-the-multiplier",
        inputs(Q.FIXED_QUANTITY, "3", multiplier="50"),
        D(3),
    ),
    (
        "percent-of-position-ignores-the-multiplier",
        inputs(Q.PERCENT_OF_POSITION, "50", position="4", multiplier="50"),
        D(2),
    ),
    (
        "es-risk-too-small-for-one-contract-says-why",
        inputs(Q.RISK_DOLLAR_AMOUNT, "400", price="5000", stop="4990", multiplier="50"),
        "quantity 0.8 rounds to 0 whole units (fractional trading is off);"
        " one unit is worth 50 per point",
    ),
]


@pytest.mark.parametrize(
    ("given_inputs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_sizing_table(given_inputs, expected):
    assert size(given_inputs) == expected


def sub(**settings):
    return type("Sub", (), settings)()


@pytest.mark.parametrize(
    ("quantity", "settings", "expected"),
    [
        ("3", {"quantity_multiplier": D(2)}, D(6)),
        ("3", {"quantity_multiplier": D("0.5")}, D(1)),  # 1.5 rounds down
        ("3", {"quantity_multiplier": D("0.5"), "fractional": True}, D("1.5")),
        ("3", {"use_signal_quantity": False, "quantity": D(10)}, D(10)),
        (None, {"quantity": D(4)}, D(4)),
        (None, {}, D(1)),  # the built-in default
    ],
)
def test_the_entry_quantity_through_resolution_and_planning(quantity, settings, expected):
    signal = Signal(ticker="AAPL", action=Action.BUY, quantity=D(quantity) if quantity else None)
    decision = make_plan(
        resolve_signal(signal, sub(**settings), None),
        Market(position=D(0), reference_price=D(10), lot_size=D("0.000001")),
    )
    assert isinstance(decision, Plan) and decision.orders[0].quantity == expected


def test_risk_sizing_measures_from_the_planned_stop_loss():
    signal = Signal(
        ticker="AAPL",
        action=Action.BUY,
        quantity=D(100),
        quantity_type=Q.RISK_DOLLAR_AMOUNT,
        signal_price=D(50),
        stop_loss=StopLoss(percent=D(4)),  # stop at 48: 2 per share at risk
    )
    decision = make_plan(resolve_signal(signal, sub(), None), Market(D(0), reference_price=D(50)))
    assert isinstance(decision, Plan)
    entry, stop = decision.orders
    assert (entry.quantity, stop.stop_price) == (D(50), D(48))


@pytest.mark.parametrize(
    ("multiplier", "fractional", "contracts", "summary"),
    [
        (D(50), False, D(1), "enter long 1 (buy 1 ESZ2026 ×50) with stop-loss stop at 4990"),
        (D(5), False, D(10), "enter long 10 (buy 10 ESZ2026 ×5)"),
        (D(1), False, D(50), "enter long 50 (buy 50 ESZ2026)"),  # a stock: 10 per share at risk
        # fractional or not, a lot of 1 keeps contracts whole
        (D(50), True, D(1), "enter long 1 (buy 1 ESZ2026 ×50)"),
    ],
)
def test_planning_sizes_risk_by_the_markets_multiplier(multiplier, fractional, contracts, summary):
    signal = Signal(
        ticker="ESZ2026",
        action=Action.BUY,
        quantity=D(500),
        quantity_type=Q.RISK_DOLLAR_AMOUNT,
        signal_price=D(5000),
        stop_loss=StopLoss(amount=D(10)),  # 10 points below the entry
    )
    market = Market(D(0), reference_price=D(5000), tick_size=D("0.25"), multiplier=multiplier)
    decision = make_plan(resolve_signal(signal, sub(fractional=fractional), None), market)
    assert isinstance(decision, Plan)
    entry, stop = decision.orders
    assert (entry.quantity, stop.quantity, stop.stop_price) == (contracts, contracts, D(4990))
    assert decision.summary.startswith(summary)


def test_a_quantity_that_rounds_to_zero_rejects_the_delivery():
    signal = Signal(ticker="AAPL", action=Action.BUY, quantity=D(5), quantity_type=Q.DOLLAR_AMOUNT)
    decision = make_plan(resolve_signal(signal, sub(), None), Market(D(0), reference_price=D(50)))
    assert decision == Reject(
        "entry quantity: quantity 0.1 rounds to 0 whole units (fractional trading is off)"
    )


@given(
    raw=st.decimals(min_value=0, max_value=10**6, places=6),
    lot=st.sampled_from([D("0.000001"), D("0.01"), D(1), D(100)]),
    fractional=st.booleans(),
)
def test_rounding_to_the_lot_goes_down_to_a_multiple_of_it(raw, lot, fractional):
    rounded = round_to_lot(raw, lot, fractional)
    unit = lot if fractional else max(lot, D(1))
    assert 0 <= rounded <= raw
    assert raw - rounded < unit
    assert rounded % unit == 0


@given(
    kind=st.sampled_from(list(Q)),
    quantity=st.decimals(min_value=D("0.01"), max_value=10**5, places=2),
    price=st.decimals(min_value=D("0.01"), max_value=10**4, places=2),
    stop_distance=st.decimals(min_value=D("-50"), max_value=50, places=2),
    position=st.integers(-1000, 1000).map(D),
)
def test_sizing_gives_a_positive_quantity_or_a_reason(
    kind, quantity, price, stop_distance, position
):
    stop = price + stop_distance if price + stop_distance > 0 else None
    result = size(SizingInputs(quantity, kind, position, price, stop, D(50000), D(1), False))
    if isinstance(result, str):
        assert result
    else:
        assert result > 0 and result == result.to_integral_value()


MONEY_TYPES = [Q.DOLLAR_AMOUNT, Q.PERCENT_OF_EQUITY, Q.RISK_DOLLAR_AMOUNT, Q.RISK_PERCENT]


@given(
    kind=st.sampled_from(MONEY_TYPES),
    quantity=st.decimals(min_value=D(1), max_value=10**6, places=2),
    price=st.decimals(min_value=D("0.5"), max_value=10**4, places=2),
    stop_distance=st.decimals(min_value=D("0.25"), max_value=100, places=2),
    multiplier=st.sampled_from([D("0.5"), D(2), D(5), D(10), D(20), D(50), D(100), D(1000)]),
    lot=st.sampled_from([D(1), D("0.001")]),
)
def test_no_money_based_size_ignores_the_multiplier(
    kind, quantity, price, stop_distance, multiplier, lot
):
    """What is bought is worth the same money whatever one unit is worth: size(m) × m is
    size(1) within one lot of each (each rounds down to its lot), and never more."""

    def sized(m: Decimal) -> Decimal:
        result = size(
            SizingInputs(quantity, kind, D(0), price, price - stop_distance, D(10**6), lot, True, m)
        )
        return D(0) if isinstance(result, str) else result

    units, one = sized(multiplier), sized(D(1))
    assert units * multiplier <= one + lot  # never more money than the signal asked for
    assert one - (units + lot) * multiplier < lot  # nor a lot less than it could buy


def test_a_huge_quantity_is_a_number_not_an_internal_error():
    # 1e14 dollars at 1e-20 is 1e34 units: Decimal's default 28 digits raised InvalidOperation
    # while rounding, and the delivery failed "internal error" instead of saying what it is
    assert size(inputs(Q.DOLLAR_AMOUNT, "1e14", price="1e-20")) == D("1e34")
    assert size(inputs(Q.DOLLAR_AMOUNT, "1e14", price="1e-30")) == D("1e44")
