"""What the broker cannot take is refused with a reason, never silently changed (SPEC §8)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_plan import intent
from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.plan import Market, Plan, Reject, Skip, make_plan
from tradepipe.core.support import fit_to_broker, refuse_unsupported

D = Decimal
ALL_TYPES = frozenset(OrderType)
ALL_TIF = frozenset(TimeInForce)
LOT = D("0.0001")  # an instrument's own step: only `fractional` keeps whole-share brokers whole


@dataclass(frozen=True)
class Can:
    order_types: frozenset[OrderType] = ALL_TYPES
    time_in_force: frozenset[TimeInForce] = ALL_TIF
    fractional: bool = True
    short_selling: bool = True
    brackets: bool = False
    concurrent_exits: bool = True
    options: bool = False


SPOT = Can(
    order_types=frozenset(
        {OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT}
    ),
    time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK}),
    short_selling=False,
    concurrent_exits=False,
)
WHOLE = Can(fractional=False)


def decide(can, action, position, quantity="2", **settings):
    settings.setdefault("fractional", True)
    quantity = settings.pop("signal_quantity", quantity)
    resolved = intent(action, quantity, **settings)
    market = Market(position=D(position), reference_price=D(100), lot_size=LOT)
    return fit_to_broker(make_plan(resolved, market), resolved, "acct", can)


# (id, capabilities, action, position, settings, expected: "plan" | summary part | reason part)
CASES = [
    ("everything-supported", Can(), "buy", "0", {}, "plan"),
    (
        "unsupported-entry-type",
        Can(order_types=frozenset({OrderType.LIMIT, OrderType.STOP})),
        "buy",
        "0",
        {},
        "broker acct does not take market orders (the entry order; it takes: limit, stop);"
        " nothing was sent",
    ),
    (
        "unsupported-exit-type",
        Can(order_types=frozenset({OrderType.LIMIT})),
        "exit",
        "5",
        {},
        "does not take market orders (the exit order",
    ),
    (
        "unsupported-time-in-force",
        SPOT,
        "buy",
        "0",
        {"time_in_force": "day"},
        "does not take time_in_force day (it takes: fok, gtc, ioc)",
    ),
    (
        "fractional-quantity-at-a-whole-share-broker",
        WHOLE,
        "buy",
        "0",
        {"signal_quantity": "1.5"},
        "takes whole quantities only (the entry order is for 1.5 AAPL)",
    ),
    ("whole-quantity-at-a-whole-share-broker", WHOLE, "buy", "0", {}, "plan"),
    (
        "sell-when-flat-without-shorting",
        SPOT,
        "sell",
        "0",
        {"time_in_force": "gtc"},
        "broker acct does not allow short selling",
    ),
    (
        "sell-on-a-long-without-shorting-only-exits",
        SPOT,
        "sell",
        "5",
        {"time_in_force": "gtc"},
        "entry dropped: broker acct does not allow short selling",
    ),
    ("exit-without-shorting", SPOT, "exit", "5", {"time_in_force": "gtc"}, "plan"),
    (
        "both-bracket-legs-where-two-exits-cannot-rest",
        SPOT,
        "buy",
        "0",
        {"time_in_force": "gtc", "take_profit": {"amount": 5}, "stop_loss": {"amount": 5}},
        "a take-profit and a stop-loss cannot both protect it: send one of them",
    ),
    (
        "one-bracket-leg-where-two-exits-cannot-rest",
        SPOT,
        "buy",
        "0",
        {"time_in_force": "gtc", "stop_loss": {"amount": 5}},
        "plan",
    ),
    (
        "both-legs-at-a-broker-with-native-brackets",
        Can(concurrent_exits=False, brackets=True),
        "buy",
        "0",
        {"take_profit": {"amount": 5}, "stop_loss": {"amount": 5}},
        "plan",
    ),
]


@pytest.mark.parametrize(
    ("can", "action", "position", "settings", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_fit_to_broker(can, action, position, settings, expected):
    decision = decide(can, action, position, **settings)
    if expected == "plan":
        assert isinstance(decision, Plan)
        assert decision == make_plan(
            intent(action, "2", fractional=True, **settings),
            Market(position=D(position), reference_price=D(100)),
        )
    elif "entry dropped" in expected:
        assert isinstance(decision, Plan)
        assert expected in decision.summary
        assert [o.role for o in decision.orders] == ["exit"]
    else:
        assert isinstance(decision, Reject), decision
        assert expected in decision.reason


def test_skips_and_rejects_pass_through_unchanged():
    assert fit_to_broker(Skip("x"), intent("buy", "1"), "acct", SPOT) == Skip("x")
    assert fit_to_broker(Reject("y"), intent("buy", "1"), "acct", SPOT) == Reject("y")


@given(
    action=st.sampled_from(["buy", "sell", "exit", "reverse", "add"]),
    position=st.sampled_from(["-5", "0", "5"]),
    quantity=st.sampled_from(["1", "2.5", "7"]),
)
def test_a_fitted_plan_never_opens_a_short_where_the_broker_allows_none(action, position, quantity):
    decision = decide(SPOT, action, position, quantity, time_in_force="gtc")
    if isinstance(decision, Plan):
        net = D(position) + sum(
            o.quantity * o.side.sign for o in decision.orders if not o.parent_leg
        )
        assert net >= min(D(position), D(0))


def test_option_fields_refuse_the_delivery_where_the_account_cannot_select_contracts():
    """SPEC §12: an options alert must never trade the underlying."""
    from tradepipe.brokers.alpaca import broker as alpaca
    from tradepipe.brokers.ibkr import broker as ibkr
    from tradepipe.brokers.paper import broker as paper
    from tradepipe.core.resolve import resolve_signal
    from tradepipe.core.signal import parse_signal

    body = {"ticker": "SPY", "action": "buy", "optionType": "put", "strikesAway": 1}
    body |= {"expiration": "+7 days", "quantity": 2, "signalPrice": 600}
    signal = parse_signal(body).signal
    resolved = resolve_signal(signal, None, None)
    refused = Reject(
        'options are not supported for account "paper" yet: optionType put,'
        " expiration +7 days, strikesAway 1; nothing was sent"
    )
    for capabilities in (alpaca.CAPABILITIES, ibkr.CAPABILITIES, Can()):
        if not capabilities.options:  # the adapters gain option selection one by one
            assert refuse_unsupported(resolved, "paper", capabilities) == refused
    assert refuse_unsupported(resolved, "paper", Can(options=True)) is None
    assert paper.CAPABILITIES.options  # the paper broker selects contracts (SPEC §15)
    assert refuse_unsupported(resolved, "paper", paper.CAPABILITIES) is None
    stock = resolve_signal(parse_signal({"ticker": "SPY", "action": "buy"}).signal, None, None)
    assert refuse_unsupported(stock, "paper", Can()) is None
