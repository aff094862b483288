"""Sizing: how many units an entry, add or partial exit is, from the quantity type (SPEC §7).

Pure. Money-based types divide by price × multiplier (SPEC §12): one unit of a future is worth
its point value per point (ES: 50), so a risk of 500 with a 10-point stop on ES is 1 contract.
Quantities round *down* to the lot (whole units unless fractional): a quantity that rounds
to zero is refused with the numbers in the reason, never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal

from tradepipe.core.signal import QuantityType

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SizingInputs:
    quantity: Decimal
    quantity_type: QuantityType
    position: Decimal
    reference_price: Decimal | None
    stop_price: Decimal | None
    equity: Decimal | None
    lot_size: Decimal
    fractional: bool
    multiplier: Decimal = Decimal(1)  # value of one unit per point of price (SPEC §12)


def round_to_lot(quantity: Decimal, lot_size: Decimal, fractional: bool) -> Decimal:
    lot = lot_size if fractional else max(lot_size, Decimal(1))
    rounded = (quantity / lot).to_integral_value(rounding=ROUND_DOWN) * lot
    # 500 / 10.00 is Decimal("5E+1"): plans and orders say 50.
    exponent = rounded.as_tuple().exponent
    if not (isinstance(exponent, int) and exponent > 0):
        return rounded
    # Every digit of a huge quantity (1e14 / 1e-20) kept: the default 28 would raise.
    return rounded.quantize(Decimal(1), context=Context(prec=max(28, rounded.adjusted() + 2)))


def size(inputs: SizingInputs) -> Decimal | str:
    """The rounded quantity, or the reason there is none."""
    amount, kind = inputs.quantity, inputs.quantity_type
    price = inputs.reference_price
    multiplier = inputs.multiplier
    raw: Decimal
    if kind is QuantityType.FIXED_QUANTITY:
        raw = amount
    elif kind is QuantityType.PERCENT_OF_POSITION:
        if inputs.position == 0:
            return "percent_of_position needs an open position"
        raw = abs(inputs.position) * amount / HUNDRED
    else:
        if price is None:
            return f"{kind} needs a reference price: send signalPrice or a limitPrice"
        if kind is QuantityType.DOLLAR_AMOUNT:
            raw = amount / (price * multiplier)
        elif kind is QuantityType.PERCENT_OF_EQUITY:
            if inputs.equity is None:
                return "percent_of_equity needs the account's equity, which the broker did not give"
            raw = inputs.equity * amount / HUNDRED / (price * multiplier)
        else:
            if inputs.stop_price is None:
                return f"{kind} needs a stop loss to measure the risk per unit"
            risk_per_unit = abs(price - inputs.stop_price)
            if risk_per_unit == 0:
                return f"{kind}: the stop {inputs.stop_price} equals the entry price"
            risk = amount
            if kind is QuantityType.RISK_PERCENT:
                if inputs.equity is None:
                    return "risk_percent needs the account's equity, which the broker did not give"
                risk = inputs.equity * amount / HUNDRED
            raw = risk / (risk_per_unit * multiplier)
    rounded = round_to_lot(raw, inputs.lot_size, inputs.fractional)
    if rounded <= 0:
        unit = "units" if inputs.fractional else "whole units"
        why = "" if inputs.fractional else " (fractional trading is off)"
        each = f"; one unit is worth {_show(multiplier)} per point" if multiplier != 1 else ""
        return f"quantity {_show(raw)} rounds to 0 {unit}{why}{each}"
    return rounded


def _show(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.000001"), rounding=ROUND_DOWN).normalize(), "f")
