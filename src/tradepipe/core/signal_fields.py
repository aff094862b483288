"""Reading one payload field: each reader takes the value as sent and its path, and gives the
typed value or records what is wrong with it (value, limit, path) in the parse's `_Context`."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from tradepipe.core.payload import FieldError, StopLoss, StopLossType, TakeProfit

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


def _seconds(most: int | None) -> _Reader:
    """Seconds from 0 (`most`: the upper limit, named in the error), e.g. `delay`."""

    def read(value: Any, path: str, ctx: _Context) -> Decimal | None:
        number = _decimal(value, path, ctx)
        if number is None:
            return None
        if number < 0:
            ctx.fail(path, f"must be 0 or more seconds {_got(value)}")
            return None
        if most is not None and number > most:
            ctx.fail(path, f"must be at most {most} seconds {_got(value)}")
            return None
        return number

    return read


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


# The fields that choose an option contract instead of the ticker itself (SPEC §15).
OPTION_FIELDS = (
    "optionType",
    "intrinsicValue",
    "expiration",
    "strikeCount",
    "strikesAway",
    "strikePrice",
)
_OPTION_SPELLINGS = {re.sub(r"[^a-z]", "", name.lower()): name for name in OPTION_FIELDS}


def _warn_unknown(key: Any, prefix: str, known: list[str], ctx: _Context) -> None:
    # A misspelt option field would trade the underlying instead of the contract it chose
    # (SPEC §12): never a warning, always a refusal, whatever the other unknown keys.
    option = isinstance(key, str) and _OPTION_SPELLINGS.get(re.sub(r"[^a-z]", "", key.lower()))
    if not prefix and option:
        ctx.fail(
            key,
            f'unknown field; did you mean "{option}"? A field that chooses an option contract'
            " is never ignored",
        )
        return
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


def _kind(value: Any) -> str:
    kinds = ((bool, "boolean"), (int | float | Decimal, "number"), (str, "string"), (list, "array"))
    found = (name for kind, name in kinds if isinstance(value, kind))
    return "null" if value is None else next(found, type(value).__name__)
