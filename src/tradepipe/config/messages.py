"""Turning validation problems into the messages users see: the file's key path, the value,
the limit, and the closest valid key or name ("did you mean ...")."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
)
from pydantic_core import PydanticCustomError

# Values of these keys are secrets: error messages never echo them.
SECRET_KEYS = frozenset({"token", "passphrase", "webhook_secret", "metrics_token", "url"})

BROKERS = ("paper", "alpaca", "ibkr", "ccxt")
_CAMEL = {
    "limitPrice": "limit_price",
    "stopPrice": "stop_price",
    "trailAmount": "trail_amount",
    "trailPercent": "trail_percent",
}


def _fail(message: str) -> PydanticCustomError:
    # No context: the message is final text, so braces in it are never read as placeholders.
    return PydanticCustomError("config", message)


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] and X | None → X."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _step(tp: Any, part: str | int) -> Any:
    """The type found at `part` inside `tp`, following pydantic's error locations."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field else None
    if get_origin(tp) is dict:
        return get_args(tp)[1]
    if get_origin(tp) is list:
        return get_args(tp)[0]
    if get_origin(tp) in (Union, UnionType):  # the accounts union: the location holds the tag
        members = [m for m in get_args(tp) if "broker" in getattr(m, "model_fields", {})]
        return next((m for m in members if m.model_fields["broker"].default == part), None)
    return None


def _keys_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    tp: Any = root
    for part in loc:
        if (tp := _step(tp, part)) is None:
            return []
    tp = _unwrap(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    keys = list(tp.model_fields)
    if getattr(tp, "camel_case_keys", False):  # the take-profit and stop-loss tables
        keys += [camel for camel, snake in _CAMEL.items() if snake in keys]
    return keys


def _closest(word: str, choices: list[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    # A TradersPost user may write the payload's camelCase (`useSignalQuantity`) here.
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", word).lower()
    if snake in lowered:
        return lowered[snake]
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return lowered[close[0]] if close else None


def _did_you_mean(word: str, choices: list[str]) -> str:
    if (close := _closest(word, choices)) is not None:
        return f' (did you mean "{close}"?)'
    if 0 < len(choices) <= 12:
        return f" (valid: {', '.join(choices)})"
    return ""


def _unknown_name(kind: str, name: str, defined: Mapping[str, Any]) -> str:
    if not defined:
        return f'no {kind} named "{name}": none is defined'
    close = _closest(name, list(defined))
    hint = f'did you mean "{close}"? ' if close else ""
    return f'no {kind} named "{name}" ({hint}defined: {", ".join(defined)})'


def _shown(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict | list):
        return "a table" if isinstance(value, dict) else "an array"
    return None


# Pydantic's wording for the common cases, said in TOML's terms.
_MESSAGES = {
    "missing": "required key is missing",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "finite_number": "must be a finite number",
    **dict.fromkeys(("model_type", "model_attributes_type", "dict_type"), "must be a table"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "must be true or false"),
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "must be a whole number"),
    **dict.fromkeys(("decimal_type", "decimal_parsing"), "must be a number"),
}


def _describe(err: Any, root: type[BaseModel]) -> tuple[tuple[str | int, ...], str]:
    """One pydantic error (validating `root`) → (key path, message naming the value and the
    limit)."""
    raw_loc, kind = tuple(err["loc"]), err["type"]
    loc = list(raw_loc)
    if loc[:1] == ["accounts"] and len(loc) >= 3 and loc[2] in BROKERS:
        del loc[2]  # the discriminated union puts the tag in the path; the file has no such level
    if loc and loc[-1] == "[key]":  # a table name, not a value
        return tuple(loc[:-1]), err["msg"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        return tuple(loc), f'unknown key "{key}"{_did_you_mean(key, _keys_at(root, raw_loc[:-1]))}'
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = err.get("ctx", {}).get("tag")
        what = f'unknown broker "{tag}"' if tag is not None else "required key is missing"
        return (*loc, "broker"), f"{what}{_did_you_mean(str(tag or ''), list(BROKERS))}"
    if kind == "config":
        return tuple(loc), err["msg"]
    message = _MESSAGES.get(kind) or err["msg"].removeprefix("Value error, ")
    message = message.replace("Input should be", "must be").replace("String should", "must")
    secret = bool(loc) and str(loc[-1]) in SECRET_KEYS
    shown = None if kind == "missing" or secret else _shown(err["input"])
    return tuple(loc), f"{message} (got {shown})" if shown else message


def _cross_problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """References between tables and token uniqueness, checked on the raw (merged) data."""
    tables = {
        k: v if isinstance(v := data.get(k), dict) else {}
        for k in ("accounts", "strategies", "subscriptions")
    }
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, sub in tables["subscriptions"].items():
        for key, section in (("strategy", "strategies"), ("account", "accounts")):
            ref = sub.get(key) if isinstance(sub, dict) else None
            if isinstance(ref, str) and ref not in tables[section]:
                problems.append(
                    (("subscriptions", name, key), _unknown_name(key, ref, tables[section]))
                )
    first_with: dict[str, str] = {}
    for name, strategy in tables["strategies"].items():
        token = strategy.get("token") if isinstance(strategy, dict) else None
        if isinstance(token, str) and token in first_with:
            problems.append(
                (("strategies", name, "token"), f"same token as strategies.{first_with[token]}")
            )
        elif isinstance(token, str):
            first_with[token] = name
    return problems


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += f".{part}" if out else part
    return out or "(top level)"
