"""The webhook payload: coercions, every field's validation, cross-field rules, and properties."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tradepipe.core.signal as signal_module
from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.signal import (
    Action,
    FieldError,
    ParsedSignal,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    StopLossType,
    TakeProfit,
    option_fields,
    parse_signal,
    signal_to_json,
)

BASE = {"ticker": "AAPL", "action": "buy"}


def parse(**fields: Any) -> ParsedSignal:
    return parse_signal({**BASE, **fields})


def accepted(**fields: Any) -> Signal:
    parsed = parse(**fields)
    assert parsed.errors == ()
    assert parsed.signal is not None and parsed.ok
    return parsed.signal


def only_error(parsed: ParsedSignal) -> FieldError:
    assert parsed.signal is None and not parsed.ok
    assert len(parsed.errors) == 1, parsed.errors
    return parsed.errors[0]


# --- coercions ---------------------------------------------------------------------------------

COERCIONS = [
    ("quantity-string", {"quantity": "3"}, "quantity", Decimal("3")),
    ("quantity-padded-string", {"quantity": " 3.5 "}, "quantity", Decimal("3.5")),
    ("quantity-leading-dot", {"quantity": ".5"}, "quantity", Decimal("0.5")),
    ("quantity-int", {"quantity": 2}, "quantity", Decimal(2)),
    ("quantity-float-keeps-shortest-repr", {"quantity": 0.1}, "quantity", Decimal("0.1")),
    ("limit-price-plus-sign", {"limitPrice": "+12.50"}, "limit_price", Decimal("12.5")),
    ("strike-price-decimal", {"strikePrice": Decimal("600")}, "strike_price", Decimal(600)),
    ("action-upper-padded", {"action": " BUY "}, "action", Action.BUY),
    ("action-breakeven", {"action": "Breakeven"}, "action", Action.BREAKEVEN),
    ("sentiment-long-alias", {"sentiment": "Long"}, "sentiment", Sentiment.BULLISH),
    ("sentiment-short-alias", {"sentiment": "SHORT"}, "sentiment", Sentiment.BEARISH),
    ("sentiment-flat", {"sentiment": " flat"}, "sentiment", Sentiment.FLAT),
    ("order-type-mixed-case", {"orderType": "Limit"}, "order_type", OrderType.LIMIT),
    ("time-in-force-upper", {"timeInForce": "GTC"}, "time_in_force", TimeInForce.GTC),
    ("delay-string", {"delay": "30"}, "delay", Decimal(30)),
    ("delay-zero", {"delay": 0}, "delay", Decimal(0)),
    ("delay-the-limit", {"delay": 3600}, "delay", Decimal(3600)),
    ("delay-fraction", {"delay": 1.5}, "delay", Decimal("1.5")),
    ("cancel-after-string", {"cancelAfter": " 60 "}, "cancel_after", Decimal(60)),
    (
        "quantity-type-upper",
        {"quantityType": "DOLLAR_AMOUNT", "quantity": "500"},
        "quantity_type",
        QuantityType.DOLLAR_AMOUNT,
    ),
    ("price-alias", {"price": "101.5"}, "signal_price", Decimal("101.5")),
    (
        "price-alias-equal-to-signal-price",
        {"price": "101.50", "signalPrice": 101.5},
        "signal_price",
        Decimal("101.5"),
    ),
    ("bool-true", {"extendedHours": True}, "extended_hours", True),
    ("bool-string-true", {"extendedHours": "TRUE"}, "extended_hours", True),
    ("bool-string-false", {"cancel": " false "}, "cancel", False),
    ("bool-ignore-windows", {"ignoreTradingWindows": "True"}, "ignore_trading_windows", True),
    (
        "time-z-suffix",
        {"time": "2024-05-01T14:30:00Z"},
        "time",
        datetime(2024, 5, 1, 14, 30, tzinfo=UTC),
    ),
    (
        "time-naive-is-utc",
        {"time": "2024-05-01T14:30:00"},
        "time",
        datetime(2024, 5, 1, 14, 30, tzinfo=UTC),
    ),
    (
        "time-offset-converted",
        {"time": "2024-05-01T10:30:00.250-04:00"},
        "time",
        datetime(2024, 5, 1, 14, 30, 0, 250000, tzinfo=UTC),
    ),
    ("ticker-stripped-not-uppercased", {"ticker": " btc/usd "}, "ticker", "btc/usd"),
    ("id-int-coerced", {"id": 12345}, "id", "12345"),
    ("id-string-kept", {"id": " abc "}, "id", " abc "),
    ("strike-count-string", {"strikeCount": "3"}, "strike_count", 3),
    ("strike-count-whole-float", {"strikeCount": 2.0}, "strike_count", 2),
    ("strikes-away-zero", {"strikesAway": 0}, "strikes_away", 0),
    ("option-type-upper", {"optionType": "CALL"}, "option_type", "call"),
    ("intrinsic-value-upper", {"intrinsicValue": "ITM"}, "intrinsic_value", "itm"),
    ("expiration-stripped", {"expiration": " +6 months "}, "expiration", "+6 months"),
    ("extras-object", {"extras": {"note": [1, 2]}}, "extras", {"note": [1, 2]}),
    ("passphrase", {"passphrase": "s3cret"}, "passphrase", "s3cret"),
    ("null-is-absent", {"quantity": None}, "quantity", None),
    (
        "take-profit-numeric-string",
        {"takeProfit": {"percent": "2"}},
        "take_profit",
        TakeProfit(percent=Decimal(2)),
    ),
    (
        "stop-loss-stop-limit",
        {"stopLoss": {"type": "STOP_LIMIT", "stopPrice": "9", "limitPrice": "8.9"}},
        "stop_loss",
        StopLoss(StopLossType.STOP_LIMIT, stop_price=Decimal(9), limit_price=Decimal("8.9")),
    ),
    (
        "stop-loss-trailing-needs-no-percent",
        {"stopLoss": {"type": "trailing_stop", "trailPercent": "1.5"}},
        "stop_loss",
        StopLoss(StopLossType.TRAILING_STOP, trail_percent=Decimal("1.5")),
    ),
    (
        "stop-loss-type-defaults-to-stop",
        {"stopLoss": {"amount": 2}},
        "stop_loss",
        StopLoss(StopLossType.STOP, amount=Decimal(2)),
    ),
]


@pytest.mark.parametrize(
    ("fields", "attribute", "expected"),
    [case[1:] for case in COERCIONS],
    ids=[case[0] for case in COERCIONS],
)
def test_parse_signal_coerces_tradingview_text(
    fields: dict[str, Any], attribute: str, expected: Any
) -> None:
    value = getattr(accepted(**fields), attribute)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_signal_minimal_payload_leaves_everything_else_unset() -> None:
    parsed = parse_signal(b'{"ticker": "AAPL", "action": "buy"}')
    assert parsed.signal == Signal(ticker="AAPL", action=Action.BUY)
    assert parsed.warnings == ()


# --- single-field errors -----------------------------------------------------------------------

FIELD_ERRORS = [
    ("delay-past-the-limit", {"delay": 7200}, "delay", "must be at most 3600 seconds (got 7200)"),
    ("delay-negative", {"delay": "-5"}, "delay", 'must be 0 or more seconds (got "-5")'),
    ("delay-word", {"delay": "soon"}, "delay", 'must be a number (got "soon")'),
    ("cancel-after-zero", {"cancelAfter": 0}, "cancelAfter", "must be greater than 0 (got 0)"),
    ("ticker-empty", {"ticker": "  "}, "ticker", "must not be empty"),
    ("ticker-number", {"ticker": 5}, "ticker", "must be a string (got 5)"),
    ("ticker-placeholder", {"ticker": "{{tickr}}"}, "ticker", '"{{tickr}}"'),
    ("action-bool", {"action": True}, "action", "(got true)"),
    ("quantity-zero", {"quantity": 0}, "quantity", "must be greater than 0 (got 0)"),
    ("quantity-word", {"quantity": "abc"}, "quantity", 'must be a number (got "abc")'),
    ("quantity-exponent-string", {"quantity": "1e2"}, "quantity", '(got "1e2")'),
    ("quantity-nan-string", {"quantity": "NaN"}, "quantity", '(got "NaN")'),
    ("quantity-nan-float", {"quantity": float("nan")}, "quantity", "(got NaN)"),
    ("quantity-infinity", {"quantity": float("inf")}, "quantity", "(got Infinity)"),
    ("quantity-bool", {"quantity": True}, "quantity", "must be a number (got true)"),
    (
        "quantity-placeholder",
        {"quantity": "{{strategy.order.contracts}}"},
        "quantity",
        "unsubstituted TradingView placeholder",
    ),
    ("quantity-huge", {"quantity": 10**20}, "quantity", "out of range (got 100000000000000000000)"),
    ("quantity-list", {"quantity": [1]}, "quantity", "(got [1])"),
    ("limit-price-negative", {"limitPrice": "-1"}, "limitPrice", '(got "-1")'),
    ("stop-price-zero", {"stopPrice": 0}, "stopPrice", "greater than 0 (got 0)"),
    ("signal-price-word", {"signalPrice": "x"}, "signalPrice", '(got "x")'),
    ("price-negative", {"price": -2}, "price", "(got -2)"),
    ("trail-amount-negative", {"trailAmount": -1}, "trailAmount", "(got -1)"),
    ("trail-percent-zero", {"trailPercent": 0}, "trailPercent", "greater than 0 (got 0)"),
    ("strike-price-zero", {"strikePrice": "0"}, "strikePrice", '(got "0")'),
    (
        "sentiment-unknown",
        {"sentiment": "up"},
        "sentiment",
        'must be one of bullish, bearish, flat, long, short (got "up")',
    ),
    ("quantity-type-unknown", {"quantityType": "shares"}, "quantityType", '(got "shares")'),
    ("order-type-unknown", {"orderType": "moc"}, "orderType", '(got "moc")'),
    ("time-in-force-unknown", {"timeInForce": "gtd"}, "timeInForce", '(got "gtd")'),
    ("bool-yes", {"extendedHours": "yes"}, "extendedHours", 'must be true or false (got "yes")'),
    ("bool-one", {"cancel": 1}, "cancel", "must be true or false (got 1)"),
    ("bool-zero-string", {"ignoreTradingWindows": "0"}, "ignoreTradingWindows", '(got "0")'),
    ("time-words", {"time": "yesterday"}, "time", '(got "yesterday")'),
    ("time-epoch", {"time": 1714573800}, "time", "ISO-8601 time such as"),
    ("id-blank", {"id": " "}, "id", 'must not be empty (got " ")'),
    ("id-too-long", {"id": "x" * 201}, "id", "at most 200 characters (got 201)"),
    ("id-bool", {"id": True}, "id", "(got true)"),
    ("passphrase-number", {"passphrase": 1234}, "passphrase", "must be a string (got 1234)"),
    ("extras-list", {"extras": [1]}, "extras", "must be an object (got [1])"),
    ("option-type-unknown", {"optionType": "straddle"}, "optionType", '(got "straddle")'),
    ("intrinsic-value-unknown", {"intrinsicValue": "atm"}, "intrinsicValue", '(got "atm")'),
    ("expiration-blank", {"expiration": ""}, "expiration", "must not be empty"),
    ("expiration-number", {"expiration": 5}, "expiration", "must be a string (got 5)"),
    ("strike-count-zero", {"strikeCount": 0}, "strikeCount", "at least 1 (got 0)"),
    ("strike-count-fraction", {"strikeCount": "2.5"}, "strikeCount", 'whole number (got "2.5")'),
    ("strikes-away-negative", {"strikesAway": -1}, "strikesAway", "at least 0 (got -1)"),
    ("take-profit-string", {"takeProfit": "2%"}, "takeProfit", 'must be an object (got "2%")'),
    ("take-profit-percent", {"takeProfit": {"percent": -1}}, "takeProfit.percent", "(got -1)"),
    ("take-profit-amount", {"takeProfit": {"amount": "0"}}, "takeProfit.amount", '(got "0")'),
    (
        "take-profit-limit",
        {"takeProfit": {"limitPrice": "x"}},
        "takeProfit.limitPrice",
        '(got "x")',
    ),
    ("stop-loss-list", {"stopLoss": [1]}, "stopLoss", "must be an object"),
    ("stop-loss-percent-zero", {"stopLoss": {"percent": 0}}, "stopLoss.percent", "(got 0)"),
    ("stop-loss-amount", {"stopLoss": {"amount": -3}}, "stopLoss.amount", "(got -3)"),
    ("stop-loss-stop-price", {"stopLoss": {"stopPrice": 0}}, "stopLoss.stopPrice", "(got 0)"),
    (
        "stop-loss-type-unknown",
        {"stopLoss": {"type": "market", "percent": 1}},
        "stopLoss.type",
        'must be one of stop, stop_limit, trailing_stop (got "market")',
    ),
    (
        "stop-loss-trail-percent",
        {"stopLoss": {"type": "trailing_stop", "trailPercent": -5}},
        "stopLoss.trailPercent",
        "greater than 0 (got -5)",
    ),
]


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [case[1:] for case in FIELD_ERRORS],
    ids=[case[0] for case in FIELD_ERRORS],
)
def test_parse_signal_rejects_bad_field_with_path_and_value(
    fields: dict[str, Any], path: str, fragment: str
) -> None:
    error = only_error(parse(**fields))
    assert error.field == path
    assert fragment in error.message


def test_parse_signal_error_messages_name_value_and_limit() -> None:
    assert parse(quantity=-5).errors == (FieldError("quantity", "must be greater than 0 (got -5)"),)
    assert parse(action="hold").errors == (
        FieldError(
            "action",
            'must be one of buy, sell, exit, cancel, add, reverse, breakeven (got "hold")',
        ),
    )


@pytest.mark.parametrize("missing", ["ticker", "action"])
@pytest.mark.parametrize("how", ["absent", "null"], ids=["absent", "null"])
def test_parse_signal_requires_ticker_and_action(missing: str, how: str) -> None:
    body: dict[str, Any] = dict(BASE)
    if how == "absent":
        del body[missing]
    else:
        body[missing] = None
    error = only_error(parse_signal(body))
    assert error.field == missing
    assert "is required" in error.message


# --- cross-field rules -------------------------------------------------------------------------

CROSS_FIELD_ERRORS = [
    (
        "take-profit-none",
        {"takeProfit": {}},
        "takeProfit",
        "needs one of limitPrice, percent, amount",
    ),
    (
        "take-profit-two",
        {"takeProfit": {"percent": 1, "amount": 2}},
        "takeProfit",
        "has both percent and amount",
    ),
    (
        "take-profit-three",
        {"takeProfit": {"limitPrice": 9, "percent": 1, "amount": 2}},
        "takeProfit",
        "has both limitPrice, percent and amount",
    ),
    (
        "take-profit-invalid-value-still-counts-as-given",
        {"takeProfit": {"percent": 1, "amount": "x"}},
        "takeProfit",
        "has both percent and amount",
    ),
    ("stop-loss-none", {"stopLoss": {}}, "stopLoss", "needs one of percent, amount, stopPrice"),
    (
        "stop-loss-two",
        {"stopLoss": {"percent": 1, "stopPrice": 9}},
        "stopLoss",
        "has both percent and stopPrice",
    ),
    (
        "stop-limit-needs-limit-price",
        {"stopLoss": {"type": "stop_limit", "stopPrice": 9}},
        "stopLoss.limitPrice",
        "is required when type is stop_limit",
    ),
    (
        "trailing-stop-loss-needs-a-trail",
        {"stopLoss": {"type": "trailing_stop", "percent": 1}},
        "stopLoss",
        "needs one of trailAmount, trailPercent",
    ),
    (
        "trailing-stop-loss-two-trails",
        {"stopLoss": {"type": "trailing_stop", "trailAmount": 1, "trailPercent": 1}},
        "stopLoss",
        "has both trailAmount and trailPercent",
    ),
    (
        "trailing-stop-loss-two-bases",
        {"stopLoss": {"type": "trailing_stop", "trailAmount": 1, "percent": 1, "amount": 1}},
        "stopLoss",
        "has both percent and amount",
    ),
    (
        "trail-on-plain-stop-loss",
        {"stopLoss": {"percent": 1, "trailAmount": 1}},
        "stopLoss.trailAmount",
        "only applies when type is trailing_stop (type is stop, the default)",
    ),
    (
        "trail-percent-on-stop-limit",
        {"stopLoss": {"type": "stop_limit", "stopPrice": 9, "limitPrice": 8, "trailPercent": 1}},
        "stopLoss.trailPercent",
        "type is stop_limit",
    ),
    (
        "limit-price-on-stop-loss",
        {"stopLoss": {"type": "stop", "percent": 1, "limitPrice": 8}},
        "stopLoss.limitPrice",
        "only applies when type is stop_limit (type is stop)",
    ),
    (
        "trailing-order-needs-a-trail",
        {"orderType": "trailing_stop"},
        "orderType",
        "needs one of trailAmount, trailPercent when orderType is trailing_stop",
    ),
    (
        "trailing-order-two-trails",
        {"orderType": "trailing_stop", "trailAmount": 1, "trailPercent": 1},
        "orderType",
        "has both trailAmount and trailPercent",
    ),
    (
        "quantity-type-without-quantity",
        {"quantityType": "fixed_quantity"},
        "quantityType",
        'needs a quantity (got "fixed_quantity")',
    ),
    (
        "percent-of-position-over-100",
        {"action": "exit", "quantityType": "percent_of_position", "quantity": 150},
        "quantity",
        "must be at most 100 with quantityType percent_of_position (got 150)",
    ),
    (
        "flat-with-add",
        {"action": "add", "sentiment": "FLAT"},
        "sentiment",
        'cannot be flat with action add (got "FLAT")',
    ),
    (
        "price-differs-from-signal-price",
        {"price": "10", "signalPrice": "11"},
        "price",
        'differs from signalPrice ("10" vs signalPrice "11")',
    ),
]


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [case[1:] for case in CROSS_FIELD_ERRORS],
    ids=[case[0] for case in CROSS_FIELD_ERRORS],
)
def test_parse_signal_enforces_cross_field_rule(
    fields: dict[str, Any], path: str, fragment: str
) -> None:
    parsed = parse(**fields)
    assert parsed.signal is None
    assert any(e.field == path and fragment in e.message for e in parsed.errors), parsed.errors


@pytest.mark.parametrize("action", ["reverse", "cancel", "breakeven"])
def test_parse_signal_percent_of_position_is_refused_for_whole_position_actions(
    action: str,
) -> None:
    error = only_error(parse(action=action, quantityType="percent_of_position", quantity=50))
    assert error == FieldError(
        "quantityType", f"percent_of_position cannot be used with action {action}"
    )


ALLOWED_COMBINATIONS = [
    ("limit-order-without-limit-price", {"orderType": "limit"}),
    ("stop-order-without-stop-price", {"orderType": "stop"}),
    ("trailing-order-with-amount", {"orderType": "trailing_stop", "trailAmount": "0.5"}),
    ("risk-quantity-without-stop-loss", {"quantityType": "risk_dollar_amount", "quantity": 100}),
    ("risk-percent-without-stop-loss", {"quantityType": "risk_percent", "quantity": 1}),
    (
        "percent-of-position-exit-100",
        {"action": "exit", "quantityType": "percent_of_position", "quantity": 100},
    ),
    (
        "percent-of-position-add",
        {"action": "add", "quantityType": "percent_of_position", "quantity": 25},
    ),
    (
        "percent-of-position-sell-bullish",
        {
            "action": "sell",
            "sentiment": "long",
            "quantityType": "percent_of_position",
            "quantity": 50,
        },
    ),
    ("flat-with-exit", {"action": "exit", "sentiment": "flat"}),
    ("flat-with-sell", {"action": "sell", "sentiment": "flat"}),
    ("bullish-with-add", {"action": "add", "sentiment": "bullish"}),
    ("sentiment-with-cancel", {"action": "cancel", "sentiment": "bearish"}),
    ("sentiment-with-reverse", {"action": "reverse", "sentiment": "short"}),
    ("sentiment-with-breakeven", {"action": "breakeven", "sentiment": "long"}),
    (
        "trailing-stop-loss-with-stop-price",
        {"stopLoss": {"type": "trailing_stop", "trailAmount": 1, "stopPrice": 9}},
    ),
    ("take-profit-null-member-ignored", {"takeProfit": {"percent": 2, "amount": None}}),
    ("stop-loss-percent-below-100", {"stopLoss": {"percent": "99.9"}}),
    ("take-profit-percent-above-100", {"takeProfit": {"percent": 250}}),
]


@pytest.mark.parametrize(
    "fields",
    [case[1] for case in ALLOWED_COMBINATIONS],
    ids=[case[0] for case in ALLOWED_COMBINATIONS],
)
def test_parse_signal_accepts_combination(fields: dict[str, Any]) -> None:
    accepted(**fields)


def test_parse_signal_reports_every_problem_at_once() -> None:
    parsed = parse_signal(
        {
            "ticker": "",
            "action": "hold",
            "quantity": -5,
            "quantiy": 3,
            "takeProfit": {"percent": 1, "amount": 2},
            "stopLoss": {"percent": 0},
            "time": "soon",
            "extendedHours": "yes",
        }
    )
    assert parsed.signal is None
    assert [e.field for e in parsed.errors] == [
        "ticker",
        "action",
        "quantity",
        "takeProfit",
        "stopLoss.percent",
        "time",
        "extendedHours",
    ]
    assert parsed.warnings == ('unknown field "quantiy" ignored (did you mean "quantity"?)',)


# --- warnings ----------------------------------------------------------------------------------

WARNINGS = [
    (
        "typo-top-level",
        {"quantiy": 3},
        ['unknown field "quantiy" ignored (did you mean "quantity"?)'],
    ),
    (
        "wrong-case",
        {"OrderType": "limit"},
        ['unknown field "OrderType" ignored (did you mean "orderType"?)'],
    ),
    ("no-suggestion", {"zzzz": 1}, ['unknown field "zzzz" ignored']),
    (
        "typo-nested",
        {"takeProfit": {"percent": 2, "percnt": 2}},
        ['unknown field "takeProfit.percnt" ignored (did you mean "takeProfit.percent"?)'],
    ),
    (
        "typo-stop-loss",
        {"stopLoss": {"amount": 2, "stopPrise": 9}},
        ['unknown field "stopLoss.stopPrise" ignored (did you mean "stopLoss.stopPrice"?)'],
    ),
    (
        "unsupported-spread-filter",
        {"bidAskSpreadFilter": 5},
        ['field "bidAskSpreadFilter" not supported by tradepipe, ignored'],
    ),
    (
        "unsupported-several",
        {"cancelOrderType": "limit", "expiresAt": "+5 minutes", "marketPriceType": "mark"},
        [
            'field "cancelOrderType" not supported by tradepipe, ignored',
            'field "expiresAt" not supported by tradepipe, ignored',
            'field "marketPriceType" not supported by tradepipe, ignored',
        ],
    ),
    ("interval-and-test-silent", {"interval": "5", "test": True}, []),
    (
        "breakeven-offset-on-a-buy",
        {"breakevenOffset": 0.5},
        ['field "breakevenOffset" only applies to action breakeven, ignored'],
    ),
]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(0.25, Decimal("0.25")), ("-0.1", Decimal("-0.1")), (0, Decimal(0))],
)
def test_breakeven_offset_is_any_number_a_signed_price_distance(offset, expected) -> None:
    parsed = parse(action="breakeven", breakevenOffset=offset)
    assert parsed.ok and not parsed.warnings
    assert parsed.signal.breakeven_offset == expected
    assert signal_to_json(parsed.signal)["breakevenOffset"] == str(expected)


def test_breakeven_offset_must_be_a_number() -> None:
    parsed = parse(action="breakeven", breakevenOffset="{{plot_0}}")
    assert [(e.field, e.message) for e in parsed.errors] == [
        (
            "breakevenOffset",
            'must be a number (got "{{plot_0}}"; looks like an unsubstituted TradingView'
            " placeholder)",
        )
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [case[1:] for case in WARNINGS],
    ids=[case[0] for case in WARNINGS],
)
def test_parse_signal_warns_about_ignored_fields(
    fields: dict[str, Any], expected: list[str]
) -> None:
    parsed = parse(**fields)
    assert parsed.ok
    assert list(parsed.warnings) == expected


def test_parse_signal_pnl_amount_is_unsupported_and_leaves_take_profit_empty() -> None:
    parsed = parse(takeProfit={"pnlAmount": 100})
    assert parsed.warnings == ('field "takeProfit.pnlAmount" not supported by tradepipe, ignored',)
    assert parsed.errors == (FieldError("takeProfit", "needs one of limitPrice, percent, amount"),)


def test_parse_signal_caps_unknown_field_warnings() -> None:
    parsed = parse(**{f"quantit{i}": 0 for i in range(500)})
    assert parsed.ok
    assert len(parsed.warnings) == 21
    assert parsed.warnings[0] == 'unknown field "quantit0" ignored (did you mean "quantity"?)'
    assert parsed.warnings[-1] == "480 more unknown fields ignored"


def test_parse_signal_keeps_warnings_when_rejecting() -> None:
    parsed = parse(quantity=0, expiresAt="+5 minutes")
    assert parsed.errors and parsed.signal is None
    assert parsed.warnings == ('field "expiresAt" not supported by tradepipe, ignored',)


# --- the body ----------------------------------------------------------------------------------

MALFORMED = [
    (
        "trailing-comma",
        b'{\n  "ticker": "AAPL",\n  "action": "buy",\n}',
        "line 4, column 1",
        "trailing comma before }",
    ),
    (
        "trailing-comma-in-array",
        '{"ticker": "AAPL", "action": "buy", "extras": {"tags": [1,]}}',
        "line 1, column 59",
        "trailing comma before ]",
    ),
    (
        "smart-quotes",
        "{“ticker”: “AAPL”, “action”: “buy”}".encode(),
        "line 1, column 2",
        "smart quotes",
    ),
    (
        "smart-quoted-value",
        '{"ticker": “AAPL”, "action": "buy"}',
        "line 1, column 12",
        "smart quotes",
    ),
    (
        "unsubstituted-placeholder",
        '{"ticker": "AAPL", "action": "buy", "quantity": {{plot_0}}}',
        "line 1, column 50",
        "unsubstituted TradingView placeholder",
    ),
    ("plain-text", b"buy AAPL", "line 1, column 1", "check for a trailing comma, smart quotes"),
    ("unclosed", b'{"ticker": "AAPL"', "line 1, column 18", "check for"),
]


@pytest.mark.parametrize(
    ("body", "where", "hint"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_parse_signal_malformed_json_says_where_and_why(
    body: bytes | str, where: str, hint: str
) -> None:
    error = only_error(parse_signal(body))
    assert error.field == ""
    assert f"invalid JSON at {where}:" in error.message
    assert hint in error.message


BAD_BODIES = [
    ("empty-bytes", b"", "body is empty"),
    ("whitespace", " \n\t", "body is empty"),
    ("bom-only", "\ufeff".encode(), "body is empty"),
    ("json-array", b"[1, 2]", "must be a JSON object such as"),
    ("json-string", b'"buy"', "(got string)"),
    ("json-number", b"5", "(got number)"),
    ("json-null", b"null", "(got null)"),
    ("json-true", b"true", "(got boolean)"),
    ("decoded-list", [BASE], "(got array)"),
    ("decoded-none", None, "(got null)"),
    ("bad-utf8", b'{"ticker": "\xff"}', "not valid UTF-8 (byte 0xff at offset 12)"),
    ("huge-integer", b'{"quantity": ' + b"9" * 5000 + b"}", "invalid JSON"),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
]


@pytest.mark.parametrize(
    ("body", "fragment"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
def test_parse_signal_rejects_body(body: Any, fragment: str) -> None:
    error = only_error(parse_signal(body))
    assert error.field == ""
    assert fragment in error.message


@pytest.mark.parametrize(
    "body",
    [
        "\ufeff" + json.dumps(BASE),
        ("\ufeff" + json.dumps(BASE)).encode(),
        bytearray(json.dumps(BASE).encode()),
        memoryview(json.dumps(BASE).encode()),
        json.dumps(BASE, indent=2),
    ],
    ids=["bom-str", "bom-bytes", "bytearray", "memoryview", "pretty"],
)
def test_parse_signal_accepts_body_forms(body: Any) -> None:
    assert parse_signal(body).signal == Signal(ticker="AAPL", action=Action.BUY)


def test_parse_signal_nan_literal_is_a_field_error_not_a_crash() -> None:
    error = only_error(parse_signal(b'{"ticker": "AAPL", "action": "buy", "price": NaN}'))
    assert error == FieldError("price", "must be a number (got NaN)")


# --- signal_to_json ------------------------------------------------------


def test_signal_to_json_uses_payload_names_and_plain_values() -> None:
    signal = accepted(
        sentiment="long",
        quantity=Decimal("1E+2"),
        price=Decimal("1E-7"),
        orderType="stop_limit",
        stopPrice="9",
        limitPrice="8.5",
        takeProfit={"percent": "2.50"},
        stopLoss={"type": "trailing_stop", "trailAmount": 1},
        time="2024-05-01T14:30:00Z",
        extendedHours="true",
        passphrase="s3cret",
        extras={"why": "breakout"},
        strikeCount="3",
    )
    out = signal_to_json(signal)
    assert out == {
        "ticker": "AAPL",
        "action": "buy",
        "sentiment": "bullish",
        "signalPrice": "0.0000001",
        "quantity": "100",
        "orderType": "stop_limit",
        "limitPrice": "8.5",
        "stopPrice": "9",
        "takeProfit": {"percent": "2.50"},
        "stopLoss": {"type": "trailing_stop", "trailAmount": "1"},
        "extendedHours": True,
        "time": "2024-05-01T14:30:00+00:00",
        "extras": {"why": "breakout"},
        "strikeCount": 3,
    }
    assert all(type(out[key]) is str for key in ("action", "sentiment", "orderType"))
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("module", ["signal", "payload", "signal_fields"])
def test_signal_module_imports_only_pure_modules(module: str) -> None:
    # signal.py and the two modules it was split into (the payload values, the field readers).
    tree = ast.parse((Path(signal_module.__file__).parent / f"{module}.py").read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = {"__future__", "collections.abc", "dataclasses", "datetime", "decimal", "difflib"}
    allowed |= {"enum", "json", "re", "typing", "tradepipe.core.model"}
    allowed |= {"tradepipe.core.payload", "tradepipe.core.signal_fields"}
    allowed |= {"tradepipe.core.schedules"}  # MAX_DELAY, SPEC §13
    assert imported <= allowed


# --- properties --------------------------------------------------------------------------------

KNOWN_FIELDS = [*signal_module._SIGNAL_FIELDS, "interval", "expiresAt"]
NESTED_FIELDS = {
    "takeProfit": set(signal_module._TAKE_PROFIT_FIELDS),
    "stopLoss": set(signal_module._STOP_LOSS_FIELDS),
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["3", " 2.5 ", "-1", "0", "true", "LONG", "trailing_stop", "1e2", "{{x}}"])
    | st.sampled_from(["2024-05-01T14:30:00Z", "9999-12-31T23:59:59-23:59", "percent_of_position"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["percent", "amount", "type", "x"]) | st.text(), inner)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(st.sampled_from(KNOWN_FIELDS) | st.text(max_size=8), json_values)


def assert_well_formed(parsed: ParsedSignal) -> None:
    assert isinstance(parsed, ParsedSignal)
    assert (parsed.signal is None) == bool(parsed.errors)
    assert all(isinstance(e, FieldError) and e.message for e in parsed.errors)
    assert all(isinstance(w, str) for w in parsed.warnings)


@given(json_values | payloads)
@settings(max_examples=300)
def test_parse_signal_never_raises_on_decoded_values(body: Any) -> None:
    assert_well_formed(parse_signal(body))
    assert_well_formed(parse_signal(json.dumps(body)))


@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode()))
def test_parse_signal_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    assert_well_formed(parse_signal(body))


@given(payloads)
def test_parse_signal_errors_name_fields_present_or_expected(body: dict[str, Any]) -> None:
    for error in parse_signal(body).errors:
        if not error.field:
            continue
        root, _, rest = error.field.partition(".")
        assert root in body or root in ("ticker", "action"), error
        if rest:
            assert isinstance(body[root], dict) and rest in NESTED_FIELDS[root], error


def positive(places: int = 4, high: str = "100000") -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(1).scaleb(-places), max_value=Decimal(high), places=places)


def spelled(number: Decimal) -> st.SearchStrategy[Any]:
    """The ways TradingView or a hand-written alert may spell one number."""
    options: list[Any] = [str(number), f" {number} ", number]
    if number == number.to_integral_value():
        options.append(int(number))
    return st.sampled_from(options)


def cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.title(), f" {word} "])


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(list(Action)))
    body: dict[str, Any] = {
        "ticker": draw(st.sampled_from(["AAPL", "BTC/USD", "MNQZ2026", "SPY 261218C00600000"])),
        "action": draw(cased(action.value)),
    }

    def maybe(key: str, strategy: st.SearchStrategy[Any]) -> None:
        if draw(st.booleans()):
            body[key] = draw(strategy)

    sentiments = ["bullish", "bearish", "long", "short"]
    sentiments += [] if action is Action.ADD else ["flat"]
    maybe("sentiment", st.sampled_from(sentiments).flatmap(cased))
    maybe("signalPrice", positive().flatmap(spelled))
    if draw(st.booleans()):
        quantity_types = [q for q in QuantityType if q is not QuantityType.PERCENT_OF_POSITION]
        if action not in (Action.REVERSE, Action.CANCEL, Action.BREAKEVEN):
            quantity_types.append(QuantityType.PERCENT_OF_POSITION)
        quantity_type = draw(st.sampled_from(quantity_types))
        high = "100" if quantity_type is QuantityType.PERCENT_OF_POSITION else "100000"
        body["quantity"] = draw(positive(high=high).flatmap(spelled))
        maybe("quantityType", cased(quantity_type.value))
    order_type = draw(st.sampled_from([*OrderType, None]))
    if order_type is not None:
        body["orderType"] = draw(cased(order_type.value))
    maybe("limitPrice", positive().flatmap(spelled))
    maybe("stopPrice", positive().flatmap(spelled))
    trails = ["trailAmount", "trailPercent"]
    if order_type is OrderType.TRAILING_STOP:
        trails = [draw(st.sampled_from(trails))]
        body[trails[0]] = draw(positive(high="99").flatmap(spelled))
    maybe("timeInForce", st.sampled_from(list(TimeInForce)).map(str))
    maybe(
        "takeProfit",
        st.sampled_from(["limitPrice", "percent", "amount"]).flatmap(
            lambda key: positive().map(lambda n: {key: str(n)})
        ),
    )
    if draw(st.booleans()):
        kind = draw(st.sampled_from(list(StopLossType)))
        stop: dict[str, Any] = {"type": kind.value}
        if kind is StopLossType.TRAILING_STOP:
            stop[draw(st.sampled_from(trails))] = str(draw(positive(high="99")))
        else:
            stop[draw(st.sampled_from(["percent", "amount", "stopPrice"]))] = draw(
                positive(high="99")
            )
        if kind is StopLossType.STOP_LIMIT:
            stop["limitPrice"] = draw(positive())
        body["stopLoss"] = stop
    for key in ("extendedHours", "ignoreTradingWindows", "cancel"):
        maybe(key, st.sampled_from([True, False, "true", "FALSE"]))
    maybe(
        "time",
        st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-4))]))
        .filter(lambda moment: 1 < moment.year < 9999)
        .map(datetime.isoformat),
    )
    maybe("id", st.text(min_size=1, max_size=200).filter(str.strip) | st.integers(0, 10**12))
    maybe("extras", st.dictionaries(st.text(max_size=5), json_scalars.filter(lambda v: v == v)))
    maybe("optionType", st.sampled_from(["both", "call", "PUT"]))
    maybe("intrinsicValue", st.sampled_from(["itm", "OTM"]))
    maybe("expiration", st.sampled_from(["+6 months", "2026-12-18", "+0 days"]))
    maybe("strikeCount", st.integers(1, 50))
    maybe("strikesAway", st.integers(0, 50).map(str))
    maybe("strikePrice", positive(2).flatmap(spelled))
    return body


@given(valid_payloads())
@settings(max_examples=300)
def test_valid_payload_round_trips_through_signal_to_json(body: dict[str, Any]) -> None:
    first = parse_signal(body)
    assert first.errors == (), first.errors
    assert first.signal is not None
    journaled = json.dumps(signal_to_json(first.signal))
    again = parse_signal(journaled)
    # What the journal holds says the same: the same signal, the same dropped-field warnings.
    assert again.errors == () and again.warnings == first.warnings
    assert again.signal == first.signal


# --- SPEC §12: tickers, dropped price fields, option fields --------------------------------------

TICKER_ALPHABET_NOTE = "a ticker is 1-64 of ASCII letters, digits, space and . / - _ : ! ^ ="
TICKERS = [
    ("stock", "AAPL", "AAPL"),
    ("exchange-prefix", "NASDAQ:AAPL", "NASDAQ:AAPL"),
    ("crypto-pair", "BTC/USD", "BTC/USD"),
    ("continuous-future", "CME_MINI:ES1!", "CME_MINI:ES1!"),
    ("class-share", "BRK.B", "BRK.B"),
    ("index-caret", "^SPX", "^SPX"),
    ("forex-equals", "EURUSD=X", "EURUSD=X"),
    ("option-occ", "SPY 261218C00600000", "SPY 261218C00600000"),
    ("dash", "BTC-PERP", "BTC-PERP"),
    ("padded", "  AAPL\n", "AAPL"),  # the ends are trimmed, as every text field's are
    ("64-characters", "A" * 64, "A" * 64),
    ("nul", "AA\x00PL", f'has "\\u0000" (U+0000) at position 3: {TICKER_ALPHABET_NOTE}'),
    ("newline", "AAPL\nINFO forged", 'has "\\n" (U+000A) at position 5'),
    ("carriage-return", "AAPL\r", None),  # trimmed: nothing left inside
    ("rtl-override", "AAPL\u202eLPAA", 'has "\\u202e" (U+202E) at position 5'),
    ("cyrillic-a", "\u0410APL", 'has "\\u0410" (U+0410) at position 1'),
    ("accented", "SOCGÉN", 'has "\\u00c9" (U+00C9) at position 5'),
    ("semicolon", "AAPL;DROP", 'has ";" (U+003B) at position 5'),
    ("tab-inside", "AA\tPL", 'has "\\t" (U+0009) at position 3'),
    ("65-characters", "A" * 65, "must be at most 64 characters (got 65)"),
    ("5000-characters", "A" * 5000, "must be at most 64 characters (got 5000)"),
]


@pytest.mark.parametrize(
    ("ticker", "expected"), [case[1:] for case in TICKERS], ids=[case[0] for case in TICKERS]
)
def test_ticker_is_printable_ascii_from_the_spec_alphabet(ticker: str, expected: str | None):
    parsed = parse(ticker=ticker)
    if expected is None:
        assert parsed.ok and parsed.signal.ticker == ticker.strip()
    elif expected == ticker.strip():
        assert parsed.ok and parsed.signal.ticker == expected
    else:
        error = only_error(parsed)
        assert error.field == "ticker"
        assert expected in error.message


def test_ticker_problems_are_all_listed_with_the_rest_of_the_payload():
    parsed = parse(ticker="\u202e" * 100, quantity=-1)
    assert [error.field for error in parsed.errors] == ["ticker", "ticker", "quantity"]
    assert "at most 64 characters (got 100)" in parsed.errors[0].message
    assert "U+202E" in parsed.errors[1].message


@given(st.text(min_size=1, max_size=80))
def test_no_ticker_outside_the_alphabet_is_accepted(ticker: str):
    parsed = parse(ticker=ticker)
    if parsed.ok:
        accepted_ticker = parsed.signal.ticker
        assert 1 <= len(accepted_ticker) <= 64
        assert all(
            ("A" <= c <= "Z") or ("a" <= c <= "z") or ("0" <= c <= "9") or c in " ./-_:!^="
            for c in accepted_ticker
        ), accepted_ticker
        assert "{{" not in accepted_ticker


DROPPED = [
    (
        "limit-on-market",
        {"orderType": "market", "limitPrice": 100},
        [
            'field "limitPrice" only applies to orderType limit or stop_limit'
            " (orderType is market), ignored"
        ],
    ),
    (
        "stop-on-limit",
        {"orderType": "limit", "limitPrice": 100, "stopPrice": 99},
        [
            'field "stopPrice" only applies to orderType stop or stop_limit (orderType is limit),'
            " ignored"
        ],
    ),
    (
        "trail-on-stop",
        {"orderType": "stop", "stopPrice": 99, "trailAmount": 2, "trailPercent": 1},
        [
            'field "trailAmount" only applies to orderType trailing_stop (orderType is stop),'
            " ignored",
            'field "trailPercent" only applies to orderType trailing_stop (orderType is stop),'
            " ignored",
        ],
    ),
    (
        "limit-without-order-type",
        {"limitPrice": 100},
        [
            'field "limitPrice" only applies to orderType limit or stop_limit (no orderType'
            " given: market unless the subscription sets another); it may be ignored"
        ],
    ),
    ("limit-on-limit", {"orderType": "limit", "limitPrice": 100}, []),
    ("both-on-stop-limit", {"orderType": "stop_limit", "limitPrice": 9, "stopPrice": 9}, []),
    ("trail-on-trailing", {"orderType": "trailing_stop", "trailPercent": 2}, []),
    (
        "take-profit-on-exit",
        {"action": "exit", "takeProfit": {"percent": 5}, "stopLoss": {"percent": 2}},
        [
            'field "takeProfit" does not apply to action exit, ignored',
            'field "stopLoss" does not apply to action exit, ignored',
        ],
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [case[1:] for case in DROPPED], ids=[case[0] for case in DROPPED]
)
def test_a_price_field_its_order_type_does_not_send_is_a_warning(fields, expected):
    parsed = parse(**fields)
    assert parsed.ok, parsed.errors
    assert list(parsed.warnings) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ()),
        (
            {"optionType": "put", "strikesAway": 1, "expiration": "+7 days"},
            ("optionType put", "expiration +7 days", "strikesAway 1"),
        ),
        (
            {"strikePrice": "600.5", "intrinsicValue": "ITM"},
            ("intrinsicValue itm", "strikePrice 600.5"),
        ),
        ({"strikeCount": 3}, ("strikeCount 3",)),
    ],
    ids=["none", "put-one-strike-away", "strike-price", "strike-count"],
)
def test_option_fields_name_the_contract_selection(fields, expected):
    assert option_fields(accepted(**fields)) == expected


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("optiontype", "optionType"),
        ("option_type", "optionType"),
        ("OptionType", "optionType"),
        ("strike_price", "strikePrice"),
        ("strikes-away", "strikesAway"),
        ("EXPIRATION", "expiration"),
        ("intrinsic_value", "intrinsicValue"),
    ],
)
def test_a_misspelt_option_field_is_a_400_never_a_stock_trade(key, meant):
    # It was a warning ("unknown field ... ignored") and the delivery bought the underlying
    error = only_error(parse(**{key: "put", "quantity": 1}))
    assert error.field == key
    assert error.message == (
        f'unknown field; did you mean "{meant}"? A field that chooses an option contract is'
        " never ignored"
    )


def test_an_unknown_field_that_is_no_option_field_stays_a_warning():
    assert accepted(quantiy=1) is not None
    warning = 'unknown field "quantiy" ignored (did you mean "quantity"?)'
    assert parse(quantiy=1).warnings == (warning,)
