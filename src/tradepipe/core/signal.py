"""The webhook payload: TradersPost's field names, TradingView's coercions, complete validation.

Pure: no I/O, no clock. `parse_signal` turns untrusted JSON into a frozen `Signal` or into the
full list of problems, each with its field path. The values live in core/payload.py and the
readers of single fields in core/signal_fields.py; both are importable from here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.payload import (
    Action,
    FieldError,
    ParsedSignal,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    StopLossType,
    TakeProfit,
)
from tradepipe.core.schedules import MAX_DELAY
from tradepipe.core.signal_fields import (
    _SMART_QUOTES,
    _STOP_LOSS_FIELDS,
    _TAKE_PROFIT_FIELDS,
    _TRAILING_COMMA,
    ID_MAX_LENGTH,
    OPTION_FIELDS,
    TICKER_ALPHABET,
    TICKER_MAX_LENGTH,
    _boolean,
    _choice,
    _Context,
    _decimal,
    _enum,
    _extras,
    _got,
    _id,
    _integer,
    _kind,
    _non_empty,
    _one_of,
    _positive,
    _read_fields,
    _Reader,
    _seconds,
    _show,
    _stop_loss,
    _take_profit,
    _text,
    _ticker,
    _time,
    ticker_problems,
)

# Importable from here as before the payload values and the field readers had their own modules.
__all__ = [
    "ID_MAX_LENGTH",
    "MAX_DEPTH",
    "OPTION_FIELDS",
    "TICKER_ALPHABET",
    "TICKER_MAX_LENGTH",
    "Action",
    "FieldError",
    "ParsedSignal",
    "QuantityType",
    "Sentiment",
    "Signal",
    "StopLoss",
    "StopLossType",
    "TakeProfit",
    "option_fields",
    "parse_signal",
    "signal_to_json",
    "ticker_problems",
]


_SIGNAL_FIELDS: dict[str, tuple[str, _Reader]] = {
    "ticker": ("ticker", _ticker),
    "action": ("action", _enum(Action)),
    "sentiment": ("sentiment", _enum(Sentiment, long=Sentiment.BULLISH, short=Sentiment.BEARISH)),
    "signalPrice": ("signal_price", _positive),
    "price": ("price", _positive),  # TradersPost's alias of signalPrice, merged in _build
    "quantity": ("quantity", _positive),
    "quantityType": ("quantity_type", _enum(QuantityType)),
    "orderType": ("order_type", _enum(OrderType)),
    "limitPrice": ("limit_price", _positive),
    "stopPrice": ("stop_price", _positive),
    "trailAmount": ("trail_amount", _positive),
    "trailPercent": ("trail_percent", _positive),
    "timeInForce": ("time_in_force", _enum(TimeInForce)),
    "takeProfit": ("take_profit", _take_profit),
    "stopLoss": ("stop_loss", _stop_loss),
    "extendedHours": ("extended_hours", _boolean),
    "ignoreTradingWindows": ("ignore_trading_windows", _boolean),
    "cancel": ("cancel", _boolean),
    "time": ("time", _time),
    "id": ("id", _id),
    "passphrase": ("passphrase", _text),
    "extras": ("extras", _extras),
    "optionType": ("option_type", _choice({"both": "both", "call": "call", "put": "put"})),
    "intrinsicValue": ("intrinsic_value", _choice({"itm": "itm", "otm": "otm"})),
    "expiration": ("expiration", _non_empty),
    "strikeCount": ("strike_count", _integer(1)),
    "strikesAway": ("strikes_away", _integer(0)),
    "strikePrice": ("strike_price", _positive),
    "breakevenOffset": ("breakeven_offset", _decimal),
    # SPEC §13: seconds to postpone the delivery, and to let its order rest unfilled.
    "delay": ("delay", _seconds(MAX_DELAY)),
    "cancelAfter": ("cancel_after", _positive),
}
# TradingView templates commonly carry these; TradersPost itself only logs them.
_SILENT = frozenset({"interval", "test"})
# TradersPost fields whose behaviour tradepipe does not reproduce: said out loud, never acted on.
_UNSUPPORTED = frozenset({"cancelOrderType", "bidAskSpreadFilter", "marketPriceType", "expiresAt"})
_EXAMPLE = '{"ticker": "AAPL", "action": "buy"}'
# These act on orders or the whole position, so a share of the position means nothing to them.
_NO_PERCENT_OF_POSITION = frozenset({Action.REVERSE, Action.CANCEL, Action.BREAKEVEN})


def parse_signal(body: bytes | str | Any) -> ParsedSignal:
    """Parse raw bytes/str (JSON whatever the content type) or an already-decoded object."""
    ctx = _Context()
    if isinstance(body, bytes | bytearray | memoryview | str):
        body = _decode(body, ctx)
    signal = None
    if not ctx.errors:
        _check_text(body, ctx)
    if not ctx.errors:
        if isinstance(body, dict):
            signal = _build(body, ctx)
        else:
            ctx.fail("", f"body must be a JSON object such as {_EXAMPLE} (got {_kind(body)})")
    if ctx.more_unknown:
        ctx.warnings.append(f"{ctx.more_unknown} more unknown fields ignored")
    if ctx.errors:
        return ParsedSignal(None, tuple(ctx.errors), tuple(ctx.warnings))
    return ParsedSignal(signal, (), tuple(ctx.warnings))


MAX_DEPTH = 32  # levels of objects and arrays; a signal needs three


def _check_text(body: Any, ctx: _Context) -> None:
    """Refuse what could not be stored or shown: a lone surrogate escape ("\\udc80" is valid
    JSON but not text) in any key or string, and nesting deeper than MAX_DEPTH. Walked with a
    list, not recursion: the body may nest as deep as the JSON parser allowed."""
    pending: list[tuple[Any, str, int]] = [(body, "", 0)]
    while pending and len(ctx.errors) < _MAX_TEXT_ERRORS:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                ctx.fail(path, "contains a lone surrogate escape (\\ud800-\\udfff), not text")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            ctx.fail(path, f"is nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(value, list):
            pending.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
            continue
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                where = where.encode("utf-8", "backslashreplace").decode()
                ctx.fail(where, "the key contains a lone surrogate escape, not text")
                continue
            pending.append((item, where, depth + 1))


_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_TEXT_ERRORS = 20


def _decode(body: bytes | bytearray | memoryview | str, ctx: _Context) -> Any:
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            bad = error.object[error.start]
            ctx.fail("", f"body is not valid UTF-8 (byte 0x{bad:02x} at offset {error.start})")
            return None
    text = text.removeprefix("\ufeff")  # Notepad and some relays prepend a byte-order mark
    if not text.strip():
        ctx.fail("", f"body is empty; send a JSON object such as {_EXAMPLE}")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        hint = _json_hint(text, error.pos)
        ctx.fail("", f"invalid JSON at {where}: {error.msg}; {hint}")
    except (ValueError, RecursionError) as error:  # an integer past Python's digit limit; nesting
        ctx.fail("", f"invalid JSON: {type(error).__name__}: {error}"[:200])
    return None


def _json_hint(text: str, pos: int) -> str:
    """Name the usual TradingView culprit when it sits where the parser stopped."""
    here = text[pos : pos + 1]
    if here and here in _SMART_QUOTES:
        return 'smart quotes (“ ”) found; use straight double quotes (")'
    if "{{" in text[max(pos - 2, 0) : pos + 2]:
        return "an unsubstituted TradingView placeholder; check its name, or quote it"
    if here in ("}", "]") and _TRAILING_COMMA.search(text, 0, pos):
        return f"a trailing comma before {here}; remove it"
    return (
        'check for a trailing comma, smart quotes (“ ”) instead of ", or an unknown {{placeholder}}'
    )


def _build(payload: dict[Any, Any], ctx: _Context) -> Signal | None:
    values, given = _read_fields(payload, "", _SIGNAL_FIELDS, _UNSUPPORTED, _SILENT, ctx)
    for name in ("ticker", "action"):
        if name not in given:
            ctx.fail(name, f"is required (e.g. {_EXAMPLE})")
    price = values.pop("price", None)
    if price is not None and values.setdefault("signal_price", price) != price:
        shown = f"{_show(payload['price'])} vs signalPrice {_show(payload['signalPrice'])}"
        ctx.fail("price", f"differs from signalPrice ({shown}); price is its alias, send one")
    action = values.get("action")
    quantity_type = values.get("quantity_type")
    if quantity_type is not None and "quantity" not in given:
        ctx.fail("quantityType", f"needs a quantity {_got(payload['quantityType'])}")
    if quantity_type is QuantityType.PERCENT_OF_POSITION:
        if action in _NO_PERCENT_OF_POSITION:
            ctx.fail("quantityType", f"percent_of_position cannot be used with action {action}")
        if values.get("quantity", 0) > 100:
            limit = "must be at most 100 with quantityType percent_of_position"
            ctx.fail("quantity", f"{limit} {_got(payload['quantity'])}")
    if action is Action.ADD and values.get("sentiment") is Sentiment.FLAT:
        ctx.fail("sentiment", f"cannot be flat with action add {_got(payload['sentiment'])}")
    if "breakevenOffset" in given and action not in (None, Action.BREAKEVEN):
        ctx.warnings.append('field "breakevenOffset" only applies to action breakeven, ignored')
    if values.get("order_type") is OrderType.TRAILING_STOP:
        trails = ("trailAmount", "trailPercent")
        _one_of(given, trails, "orderType", ctx, " when orderType is trailing_stop")
    if "orderType" not in given or "order_type" in values:
        _warn_unused_prices(values.get("order_type"), given, ctx)
    if action in _NO_BRACKET:
        for name in ("takeProfit", "stopLoss"):
            if name in given:
                ctx.warnings.append(f'field "{name}" does not apply to action {action}, ignored')
    return None if ctx.errors else Signal(**values)


# The order types that send each of the signal's own price fields (SPEC §4).
_PRICE_USERS = {
    "limitPrice": (OrderType.LIMIT, OrderType.STOP_LIMIT),
    "stopPrice": (OrderType.STOP, OrderType.STOP_LIMIT),
    "trailAmount": (OrderType.TRAILING_STOP,),
    "trailPercent": (OrderType.TRAILING_STOP,),
}
# Actions that never place an entry, so a take-profit or stop-loss has nothing to attach to.
_NO_BRACKET = frozenset({Action.EXIT, Action.CANCEL, Action.BREAKEVEN})


def _warn_unused_prices(order_type: OrderType | None, given: list[str], ctx: _Context) -> None:
    """A price its order type does not send changes *how* the alert trades: say it is dropped.

    Judged by the signal's own orderType (market when it gives none): a subscription whose
    entry_order_type/exit_order_type says limit still uses the signal's limitPrice.
    """
    kind = order_type or OrderType.MARKET
    for name, users in _PRICE_USERS.items():
        if name in given and kind not in users:
            wanted = " or ".join(users)
            if order_type is None:
                why = "no orderType given: market unless the subscription sets another"
                ctx.warnings.append(
                    f'field "{name}" only applies to orderType {wanted} ({why}); it may be ignored'
                )
            else:
                ctx.warnings.append(
                    f'field "{name}" only applies to orderType {wanted} (orderType is {kind}),'
                    " ignored"
                )


def option_fields(signal: Signal) -> tuple[str, ...]:
    """The option selection the signal asks for, as `name value`; empty: it trades the ticker."""
    given = signal_to_json(signal)
    return tuple(f"{name} {given[name]}" for name in OPTION_FIELDS if name in given)


def _names(table: dict[str, tuple[str, _Reader]]) -> dict[str, str]:
    return {attribute: key for key, (attribute, _) in table.items() if key != "price"}


_JSON_NAMES = {
    Signal: _names(_SIGNAL_FIELDS),
    TakeProfit: _names(_TAKE_PROFIT_FIELDS),
    StopLoss: _names(_STOP_LOSS_FIELDS),
}


def signal_to_json(signal: Signal | TakeProfit | StopLoss) -> dict[str, Any]:
    """The normalised signal in the payload's own names; `parse_signal` reads it back unchanged.

    Decimals become plain-notation strings (JSON floats would lose digits); the passphrase is
    left out because this is what gets journaled and shown.
    """
    names = _JSON_NAMES[type(signal)]
    out: dict[str, Any] = {}
    for spec in fields(signal):
        value = getattr(signal, spec.name)
        if value is None or spec.name == "passphrase":
            continue
        if isinstance(value, TakeProfit | StopLoss):
            value = signal_to_json(value)
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, dict):
            value = dict(value)
        out[names[spec.name]] = value
    return out
