"""OrderState read against the quantity we sent (tradepipe.core.model)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradepipe.core.model import OrderState, OrderStatus

P, F, A, C = (
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED,
    OrderStatus.ACCEPTED,
    OrderStatus.CANCELED,
)


@pytest.mark.parametrize(
    ("status", "filled", "sent", "read"),
    [
        (P, "5", "5", F),  # fills cover the order: filled, whatever the broker could say
        (P, "6", "5", F),
        (P, "4.99", "5", P),  # not covered: still partly filled
        (P, "0", "0", P),  # nothing sent, nothing to cover
        (A, "0", "5", A),
        (F, "5", "5", F),
        (C, "3", "5", C),  # a canceled rest stays canceled: never promoted
    ],
)
def test_an_answer_is_filled_once_its_fills_cover_the_quantity_sent(status, filled, sent, read):
    state = OrderState("c1", status, filled_quantity=D(filled))
    assert state.against(D(sent)).status is read
    assert state.against(D(sent)).filled_quantity == D(filled)
