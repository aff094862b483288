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


def test_statuses_are_the_strings_the_journal_stores_and_each_set_is_defined_once():
    from tradepipe.cli import reading
    from tradepipe.core import reconcile
    from tradepipe.core.model import (
        FINAL_DELIVERY,
        FINAL_ORDER,
        FINISHED_SIGNAL,
        LIVE_ORDER,
        WORKING_ORDER,
        DeliveryStatus,
        SignalStatus,
    )
    from tradepipe.daemon import client
    from tradepipe.engine.lanes import FINAL_DELIVERY as engine_final

    assert DeliveryStatus.PENDING_APPROVAL == "pending_approval"
    assert SignalStatus.PROCESSED == "processed"
    assert {str(s) for s in DeliveryStatus} == {
        "queued", "approved", "planned", "pending_approval",
        "submitted", "skipped", "rejected", "failed", "delayed",
    }  # fmt: skip
    assert {str(s) for s in SignalStatus} == {"accepted", "rejected", "duplicate", "processed"}
    # The sets other folders still spell out agree with the ones here until they adopt them.
    assert engine_final == FINAL_DELIVERY
    assert client.FINISHED_SIGNAL == FINISHED_SIGNAL
    # Adopted: the engine, the daemon's client and the CLI use these very objects, no copies.
    assert engine_final is FINAL_DELIVERY
    assert client.FINISHED_SIGNAL is FINISHED_SIGNAL and not hasattr(client, "FINISHED")
    assert reading.SignalStatus is SignalStatus
    # `signals --status` lists its choices in this order (help and error message).
    assert list(SignalStatus) == ["accepted", "processed", "rejected", "duplicate"]
    assert reconcile.WORKING == WORKING_ORDER and reconcile.DONE == FINAL_ORDER
    assert all(type(s) is str for s in reconcile.WORKING)  # the journal writes repr() into SQL
    live = {"held", "submitting", "submitted", "accepted", "partially_filled", "unknown"}
    assert live == LIVE_ORDER  # journal/__init__.py's _LIVE_ORDER spells it in SQL
    assert [s.is_final for s in DeliveryStatus] == [s in engine_final for s in DeliveryStatus]
