"""The webhook payload: TradersPost's field names, TradingView's coercions, complete validation.

Pure: no I/O, no clock. `parse_signal` turns untrusted JSON into a frozen `Signal` or into the
full list of problems, each with its field path.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from tradepipe.core.model import OrderType, TimeInForce


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"
    CANCEL = "cancel"
    ADD = "add"
    REVERSE = "reverse"
    BREAKEVEN = "breakeven"


class Sentiment(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    FLAT = "flat"


class QuantityType(StrEnum):
    FIXED_QUANTITY = "fixed_quantity"
    DOLLAR_AMOUNT = "dollar_amount"
    RISK_DOLLAR_AMOUNT = "risk_dollar_amount"
    RISK_PERCENT = "risk_percent"
    PERCENT_OF_EQUITY = "percent_of_equity"
    PERCENT_OF_POSITION = "percent_of_position"


class StopLossType(StrEnum):
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


@dataclass(frozen=True, slots=True)
class TakeProfit:
    limit_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopLoss:
    type: StopLossType = StopLossType.STOP
    percent: Decimal | None = None
    amount: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    ticker: str
    action: Action
    sentiment: Sentiment | None = None
    signal_price: Decimal | None = None
    quantity: Decimal | None = None
    quantity_type: QuantityType | None = None
    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce | None = None
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    extended_hours: bool | None = None
    ignore_trading_windows: bool | None = None
    cancel: bool | None = None
    time: datetime | None = None
    id: str | None = None
    passphrase: str | None = None
    extras: dict[str, Any] | None = None
    option_type: str | None = None
    intrinsic_value: str | None = None
    expiration: str | None = None
    strike_count: int | None = None
    strikes_away: int | None = None
    strike_price: Decimal | None = None
    breakeven_offset: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # path in the payload, e.g. "stopLoss.percent"; "" for the body as a whole
    message: str


@dataclass(frozen=True, slots=True)
class ParsedSignal:
    """The outcome of parsing: a signal, or every problem found; warnings either way."""

    signal: Signal | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.signal is not None and not self.errors


ID_MAX_LENGTH = 200
TICKER_MAX_LENGTH = 64
TICKER_ALPHABET = "1-64 of ASCII letters, digits, space and . / - _ : ! ^ ="
# Anything else (NUL, a newline that would forge a log line, a right-to-left override) is no symbol.
_NOT_TICKER = re.compile(r"[^A-Za-z0-9 ./\-_:!^=]")

# Plain decimal notation only: TradingView prints placeholders such as {{close}} this way, and
# refusing exponents keeps a hostile "1e999999" from becoming a million-digit Decimal.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_MAGNITUDE = range(-30, 15)  # Decimal.adjusted() bounds; anything outside is a typo or an attack
_MAX_UNKNOWN_WARNINGS = 20
_SMART_QUOTES = "“”„‘’«»"
_TRAILING_COMMA = re.compile(r",\s*$")


class _Context:
    """Collects every problem of one parse, so a user fixes an alert in one round trip."""

    __slots__ = ("errors", "more_unknown", "warnings")

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.warnings: list[str] = []
        self.more_unknown = 0  # unknown fields past _MAX_UNKNOWN_WARNINGS, only counted

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))


_Reader = Callable[[Any, str, _Context], Any]


def _show(value: Any) -> str:
    """The offending value as the user wrote it (JSON spelling), cut short for a log line."""
    try:
        text = str(value) if isinstance(value, Decimal) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    except RecursionError:  # repr would recurse as deep
        text = f"a {_kind(value)} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    hint = ""
    if isinstance(value, str) and "{{" in value:
        hint = "; looks like an unsubstituted TradingView placeholder"
    return f"(got {_show(value)}{hint})"


def _decimal(value: Any, path: str, ctx: _Context) -> Decimal | None:
    number: Decimal | None = None
    if isinstance(value, bool):  # bool is an int subclass; true is not a quantity
        pass
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # str() is the shortest repr, so 0.1 stays 0.1 rather than 0.1000000000000000055...
        number = Decimal(str(value))
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    if number is None or not number.is_finite():
        ctx.fail(path, f"must be a number {_got(value)}")
        return None
    if number and number.adjusted() not in _MAGNITUDE:
        ctx.fail(path, f"is out of range {_got(value)}")
        return None
    return number


def _above_zero(below: int | None = None) -> _Reader:
    # `below` is for percents that take away from a whole: a 100% stop is no stop at all.
    limit = "must be greater than 0" + (f" and less than {below}" if below else "")

    def read(value: Any, path: str, ctx: _Context) -> Decimal | None:
        number = _decimal(value, path, ctx)
        if number is not None and (number <= 0 or (below is not None and number >= below)):
            ctx.fail(path, f"{limit} {_got(value)}")
            return None
        return number

    return read


_positive = _above_zero()


def _integer(minimum: int) -> _Reader:
    def read(value: Any, path: str, ctx: _Context) -> int | None:
        number = _decimal(value, path, ctx)
        if number is None:
            return None
        if number != number.to_integral_value():
            ctx.fail(path, f"must be a whole number {_got(value)}")
            return None
        if number < minimum:
            ctx.fail(path, f"must be at least {minimum} {_got(value)}")
            return None
        return int(number)

    return read


def _choice(choices: dict[str, Any]) -> _Reader:
    """Case-insensitive, whitespace-trimmed: TradingView's {{strategy.order.action}} et al."""
    listed = ", ".join(choices)

    def read(value: Any, path: str, ctx: _Context) -> Any:
        if isinstance(value, str):
            found = choices.get(value.strip().lower())
            if found is not None:
                return found
        ctx.fail(path, f"must be one of {listed} {_got(value)}")
        return None

    return read


def _enum(enum: type[Enum], **aliases: Any) -> _Reader:
    return _choice({member.value: member for member in enum} | aliases)


def _boolean(value: Any, path: str, ctx: _Context) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    ctx.fail(path, f"must be true or false {_got(value)}")
    return None


def _time(value: Any, path: str, ctx: _Context) -> datetime | None:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())  # 3.11+: accepts a "Z" suffix
            # TradingView's {{timenow}} is UTC; a time without an offset is read the same way.
            if moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    ctx.fail(path, f"must be an ISO-8601 time such as 2024-05-01T14:30:00Z {_got(value)}")
    return None


def _text(value: Any, path: str, ctx: _Context) -> str | None:
    if isinstance(value, str):
        return value
    ctx.fail(path, f"must be a string {_got(value)}")
    return None


def _non_empty(value: Any, path: str, ctx: _Context) -> str | None:
    text = _text(value, path, ctx)
    if text is not None and not text.strip():
        ctx.fail(path, f"must not be empty {_got(value)}")
        return None
    return None if text is None else text.strip()


def ticker_problems(ticker: str) -> list[str]:
    """Why `ticker` is not a symbol (SPEC §12), every reason; empty when it is one.

    ASCII letters only: every venue tradepipe speaks to spells its symbols so, and a look-alike
    Cyrillic "А" or a right-to-left override must not name a different instrument than it shows.
    """
    problems = []
    if len(ticker) > TICKER_MAX_LENGTH:
        problems.append(f"must be at most {TICKER_MAX_LENGTH} characters (got {len(ticker)})")
    bad = _NOT_TICKER.search(ticker)
    if bad is not None:
        char = bad.group()
        problems.append(
            f"has {json.dumps(char)} (U+{ord(char):04X}) at position {bad.start() + 1}: a ticker"
            f" is {TICKER_ALPHABET}"
        )
    return problems


def _ticker(value: Any, path: str, ctx: _Context) -> str | None:
    ticker = _non_empty(value, path, ctx)
    if ticker is not None and "{{" in ticker:  # no venue lists a symbol with braces
        ctx.fail(path, f"is not a symbol {_got(value)}")
        return None
    problems = [] if ticker is None else ticker_problems(ticker)
    for problem in problems:
        ctx.fail(path, problem)
    return None if problems else ticker


def _id(value: Any, path: str, ctx: _Context) -> str | None:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = _decimal(value, path, ctx)  # an unquoted {{timenow}}-ish number is still a key
        return None if number is None else format(number, "f")
    text = _non_empty(value, path, ctx)
    if text is not None and len(value) > ID_MAX_LENGTH:
        ctx.fail(path, f"must be at most {ID_MAX_LENGTH} characters (got {len(value)})")
        return None
    return None if text is None else value


def _extras(value: Any, path: str, ctx: _Context) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return dict(value)
    ctx.fail(path, f"must be an object {_got(value)}")
    return None


def _warn_unknown(key: Any, prefix: str, known: list[str], ctx: _Context) -> None:
    # difflib is the slow path: a 64 KiB body of near-miss keys must not stall the event loop.
    if len(ctx.warnings) >= _MAX_UNKNOWN_WARNINGS:
        ctx.more_unknown += 1
        return
    name = f"{prefix}{key}"
    guesses = difflib.get_close_matches(str(key), known, n=1) if isinstance(key, str) else []
    hint = f' (did you mean "{prefix}{guesses[0]}"?)' if guesses else ""
    ctx.warnings.append(f"unknown field {json.dumps(name, ensure_ascii=False)} ignored{hint}")


def _read_fields(
    obj: dict[Any, Any],
    prefix: str,
    table: dict[str, tuple[str, _Reader]],
    unsupported: frozenset[str],
    silent: frozenset[str],
    ctx: _Context,
) -> tuple[dict[str, Any], list[str]]:
    """Read `obj` through `table`: (attribute values, payload keys given with a non-null value)."""
    values: dict[str, Any] = {}
    given: list[str] = []
    for key, value in obj.items():
        entry = table.get(key) if isinstance(key, str) else None
        if entry is None:
            if key in unsupported:
                ctx.warnings.append(f'field "{prefix}{key}" not supported by tradepipe, ignored')
            elif key not in silent:
                _warn_unknown(key, prefix, [*table, *unsupported, *silent], ctx)
            continue
        if value is None:  # null is how a template says "not this time"
            continue
        given.append(key)
        read = entry[1](value, prefix + key, ctx)
        if read is not None:
            values[entry[0]] = read
    return values, given


def _one_of(
    given: list[str], names: tuple[str, ...], path: str, ctx: _Context, required: str | None = ""
) -> None:
    """At most one of `names`; unless `required` is None, at least one (`required` says when)."""
    present = [name for name in names if name in given]
    if len(present) > 1:
        both = ", ".join(present[:-1]) + f" and {present[-1]}"
        ctx.fail(path, f"has both {both}; give exactly one of {', '.join(names)}")
    elif not present and required is not None:
        ctx.fail(path, f"needs one of {', '.join(names)}{required}")


_TAKE_PROFIT_FIELDS = {
    "limitPrice": ("limit_price", _positive),
    "percent": ("percent", _positive),
    "amount": ("amount", _positive),
}
_STOP_LOSS_FIELDS = {
    "type": ("type", _enum(StopLossType)),
    "percent": ("percent", _positive),
    "amount": ("amount", _positive),
    "stopPrice": ("stop_price", _positive),
    "limitPrice": ("limit_price", _positive),
    "trailAmount": ("trail_amount", _positive),
    "trailPercent": ("trail_percent", _positive),
}
_NESTED_UNSUPPORTED = frozenset({"pnlAmount"})  # TradersPost 2026-04: P&L-based exits


def _nested(value: Any, path: str, ctx: _Context, table: dict[str, tuple[str, _Reader]]) -> Any:
    if isinstance(value, dict):
        return _read_fields(value, path + ".", table, _NESTED_UNSUPPORTED, frozenset(), ctx)
    ctx.fail(path, f"must be an object {_got(value)}")
    return None


def _take_profit(value: Any, path: str, ctx: _Context) -> TakeProfit | None:
    read = _nested(value, path, ctx, _TAKE_PROFIT_FIELDS)
    if read is None:
        return None
    _one_of(read[1], tuple(_TAKE_PROFIT_FIELDS), path, ctx)
    return TakeProfit(**read[0])


def _stop_loss(value: Any, path: str, ctx: _Context) -> StopLoss | None:
    read = _nested(value, path, ctx, _STOP_LOSS_FIELDS)
    if read is None:
        return None
    values, given = read
    if "type" in given and "type" not in values:
        return None  # an unknown type: which other fields belong is anyone's guess
    kind = values.get("type", StopLossType.STOP)
    shown = kind.value if "type" in given else f"{kind.value}, the default"
    trailing = kind is StopLossType.TRAILING_STOP
    # A trailing stop trails the market: its distance replaces percent/amount/stopPrice.
    _one_of(given, ("percent", "amount", "stopPrice"), path, ctx, None if trailing else "")
    trails = ("trailAmount", "trailPercent")
    if trailing:
        _one_of(given, trails, path, ctx, " when type is trailing_stop")
    else:
        for name in trails:
            if name in given:
                ctx.fail(
                    f"{path}.{name}", f"only applies when type is trailing_stop (type is {shown})"
                )
    if kind is StopLossType.STOP_LIMIT and "limitPrice" not in given:
        ctx.fail(f"{path}.limitPrice", "is required when type is stop_limit")
    elif kind is not StopLossType.STOP_LIMIT and "limitPrice" in given:
        ctx.fail(f"{path}.limitPrice", f"only applies when type is stop_limit (type is {shown})")
    return StopLoss(**values)


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
}
# TradingView templates commonly carry these; TradersPost itself only logs them.
_SILENT = frozenset({"interval", "test"})
# TradersPost fields whose behaviour tradepipe does not reproduce: said out loud, never acted on.
_UNSUPPORTED = frozenset(
    {"delay", "cancelAfter", "cancelOrderType", "bidAskSpreadFilter"}
    | {"marketPriceType", "expiresAt"}
)
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


def _kind(value: Any) -> str:
    kinds = ((bool, "boolean"), (int | float | Decimal, "number"), (str, "string"), (list, "array"))
    found = (name for kind, name in kinds if isinstance(value, kind))
    return "null" if value is None else next(found, type(value).__name__)


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


# The fields that choose an option contract instead of the ticker itself (SPEC §15).
OPTION_FIELDS = (
    "optionType",
    "intrinsicValue",
    "expiration",
    "strikeCount",
    "strikesAway",
    "strikePrice",
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
