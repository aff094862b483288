"""Deterministic client order ids (SPEC §8)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.ids import base36, client_order_id, leg_of, operator_order_id, sibling_id


def test_same_inputs_give_the_same_id():
    assert client_order_id("abcd1234", 42, "trend-paper", "entry") == client_order_id(
        "abcd1234", 42, "trend-paper", "entry"
    )


def test_legs_subscriptions_signals_and_attempts_give_different_ids():
    ids = {
        client_order_id("abcd1234", 42, "trend-paper", "entry"),
        client_order_id("abcd1234", 42, "trend-paper", "exit"),
        client_order_id("abcd1234", 42, "trend-live", "entry"),
        client_order_id("abcd1234", 43, "trend-paper", "entry"),
        client_order_id("abcd1234", 42, "trend-paper", "entry", attempt=1),
        client_order_id("ffff0000", 42, "trend-paper", "entry"),
        client_order_id("abcd1234", 42, "trend-paper", "breakeven"),
        client_order_id("abcd1234", 42, "trend-paper", "breakeven-1"),
        client_order_id("abcd1234", 42, "trend-paper", "breakeven-11"),
        client_order_id("abcd1234", 42, "trend-paper", "breakeven", attempt=1),
    }
    assert len(ids) == 10


def test_an_unknown_leg_is_refused():
    with pytest.raises(ValueError, match="unknown order leg 'hedge'"):
        client_order_id("abcd1234", 42, "trend-paper", "hedge")


@given(
    instance=st.text("0123456789abcdef", min_size=8, max_size=8),
    # Room for 36**8 (2.8 trillion) signals, up to 36 moved stops and 36**2 re-executions.
    signal_id=st.integers(0, 36**8 - 1),
    subscription=st.text(min_size=1, max_size=40),
    leg=st.sampled_from(["exit", "entry", "take_profit", "stop_loss", "cancel", "breakeven"])
    | st.integers(1, 35).map(lambda n: f"breakeven-{n}"),
    attempt=st.integers(0, 36**2 - 1),
)
def test_ids_fit_the_broker_rules(instance, signal_id, subscription, leg, attempt):
    identifier = client_order_id(instance, signal_id, subscription, leg, attempt)
    assert len(identifier) <= 32
    assert re.fullmatch(r"[A-Za-z0-9-]+", identifier)


def test_base36():
    assert [base36(n) for n in (0, 35, 36, 1295)] == ["0", "z", "10", "zz"]


@given(action=st.integers(0, 36**8 - 1), ticker=st.text(min_size=1, max_size=20))
def test_operator_ids_fit_and_never_look_like_signal_ids(action, ticker):
    from tradepipe.core.ids import operator_order_id

    identifier = operator_order_id("abcd1234", action, "paper", ticker)
    assert len(identifier) <= 32 and re.fullmatch(r"[A-Za-z0-9-]+", identifier)
    assert identifier.split("-")[1].startswith("F")  # signal ids are lower-case base 36
    assert identifier == operator_order_id("abcd1234", action, "paper", ticker)


@given(
    instance=st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
    signal_id=st.integers(min_value=1, max_value=10**9),
    subscription=st.text(min_size=1, max_size=40),
    attempt=st.integers(min_value=0, max_value=1000),
    leg=st.sampled_from(["take_profit", "stop_loss", "exit"]),
)
def test_sibling_ids_are_the_ids_the_engine_gives_the_other_legs(
    instance, signal_id, subscription, attempt, leg
):
    """Alpaca names bracket legs itself; the adapter answers for them under our ids, which it
    finds from the entry's id (and back) — they must be the ids the engine journaled."""
    entry = client_order_id(instance, signal_id, subscription, "entry", attempt)
    other = client_order_id(instance, signal_id, subscription, leg, attempt)
    assert sibling_id(entry, leg) == other
    assert sibling_id(other, "entry") == entry
    assert (leg_of(entry), leg_of(other)) == ("entry", leg)


def test_ids_that_are_not_ours_have_no_leg():
    assert leg_of("904d7f4e-3a2b-4c8e-9b1a-2f7c1d3e5a6b") is None  # an Alpaca uuid
    assert leg_of("") is None
    assert leg_of(operator_order_id("abcd1234", 7, "paper", "AAPL")) == "exit"
