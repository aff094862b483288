"""The configuration file: one pydantic model per TOML table, `TRADEPIPE_…` environment overrides.

`load_config` reads the TOML file, lets environment variables override keys, validates, and
raises a single `ConfigError` naming the file and every problem with its key path, value and limit.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hmac
import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from tradepipe.core.instruments import ROOT, ContractSpec, overridden
from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.signal import QuantityType, StopLossType
from tradepipe.core.windows import Window, parse_days, parse_minutes
from tradepipe.errors import ConfigError

# Values of these keys are secrets: error messages never echo them.
SECRET_KEYS = frozenset({"token", "passphrase", "webhook_secret"})
MIN_TOKEN_LENGTH = 22  # 22 base64url characters carry 132 bits

# No leading, trailing or doubled separators: then the credential variable derived from an
# account name (`TRADEPIPE_<NAME>_KEY`) never contains "__" and cannot be read as a config key.
_NAME = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_CAMEL = {
    "limitPrice": "limit_price",
    "stopPrice": "stop_price",
    "trailAmount": "trail_amount",
    "trailPercent": "trail_percent",
}


def _fail(message: str) -> PydanticCustomError:
    # No context: the message is final text, so braces in it are never read as placeholders.
    return PydanticCustomError("config", message)


def _check_name(name: str) -> str:
    if len(name) > 40 or not _NAME.fullmatch(name):
        raise _fail(
            f'name "{name}" must be 1-40 letters and digits, with single "-" or "_" between them'
        )
    return name


def _check_url(url: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise _fail(f'"{url}" must be an http:// or https:// URL')
    return url.rstrip("/")


def _check_ws_url(url: str) -> str:
    if not re.fullmatch(r"wss?://[^\s/]+(/\S*)?", url):
        raise _fail(f'"{url}" must be a ws:// or wss:// URL')
    return url.rstrip("/")


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _fail(f'"{value}" is not an IP address or CIDR network') from None
        raise _fail(f'"{value}" has host bits set (did you mean "{network}"?)') from None
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Url = Annotated[str, AfterValidator(_check_url)]
WsUrl = Annotated[str, AfterValidator(_check_ws_url)]
Network = Annotated[str, AfterValidator(_check_network)]
Positive = Annotated[Decimal, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- server, journal, accounts


class ServerConfig(_Table):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: Port = 8080
    public_url: Url | None = None
    shutdown_grace: Annotated[Decimal, Field(ge=0)] = Decimal(10)


class JournalConfig(_Table):
    path: Path = Path("tradepipe.db")


class ReconciliationConfig(_Table):
    interval: Annotated[Decimal, Field(ge=0)] = Decimal(300)
    block_entries_on_mismatch: bool = True


class InstrumentOverride(_Table):
    """What one contract of a futures root is worth on a paper account (SPEC §12); a key not
    given keeps the value of SPEC §12's table."""

    multiplier: Positive | None = None
    tick_size: Positive | None = None
    lot_size: Positive | None = None


class _Account(_Table):
    # Percent inputs above 100 (risk_percent, percent_of_equity, stop-loss and trail percents)
    # need margin: refused unless the account says it has it (SPEC §12).
    allow_leverage: bool = False


class PaperAccount(_Account):
    broker: Literal["paper"] = "paper"
    cash: Positive = Decimal(100000)
    native_brackets: bool = True
    instruments: dict[str, InstrumentOverride] = {}

    @field_validator("instruments", mode="before")
    @classmethod
    def _roots(cls, tables: Any) -> Any:
        # Environment overrides arrive lower-cased: a root is one spelling, upper case.
        if not isinstance(tables, dict):
            return tables
        roots: dict[str, Any] = {}
        for key, table in tables.items():
            root = str(key).upper()
            if not ROOT.fullmatch(root):
                raise _fail(
                    f'"{key}" is not a futures root: 1-6 letters and digits starting with a'
                    ' letter, as in ESZ2026 (root "ES")'
                )
            if root in roots:
                raise _fail(f'the root "{root}" is given twice')
            roots[root] = table
        return roots

    @field_validator("instruments")
    @classmethod
    def _complete(cls, tables: dict[str, InstrumentOverride]) -> dict[str, InstrumentOverride]:
        for root, table in tables.items():
            spec = overridden(root, table.multiplier, table.tick_size, table.lot_size)
            if isinstance(spec, str):
                raise _fail(spec)
        return tables

    def contract_specs(self) -> dict[str, ContractSpec]:
        """The configured roots' contracts, each completed from SPEC §12's table."""
        specs = {}
        for root, table in self.instruments.items():
            spec = overridden(root, table.multiplier, table.tick_size, table.lot_size)
            assert not isinstance(spec, str)  # checked when the file was read
            specs[root] = spec
        return specs


class AlpacaAccount(_Account):
    broker: Literal["alpaca"] = "alpaca"
    paper: bool = True
    base_url: Url | None = None
    stream_url: WsUrl | None = None
    data_url: Url | None = None
    timeout: Positive = Decimal(10)


class IbkrAccount(_Account):
    broker: Literal["ibkr"] = "ibkr"
    host: str = Field(default="127.0.0.1", min_length=1)
    port: Port = 4002
    client_id: int = Field(default=1)
    account: str | None = Field(default=None, min_length=1)
    timeout: Positive = Decimal(10)

    @field_validator("client_id")
    @classmethod
    def _not_tws_own(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"must be 1 or more (got {value}): client id 0 is TWS's own, and with it IB"
                " hands tradepipe the orders typed into TWS by hand as if they were its own"
            )
        return value


class CcxtAccount(_Account):
    broker: Literal["ccxt"] = "ccxt"
    exchange: str = Field(pattern=r"^[a-z0-9_]+$")
    sandbox: bool = True
    market_type: Literal["spot", "swap"] = "spot"
    base_url: Url | None = None
    timeout: Positive = Decimal(10)


Account = Annotated[
    PaperAccount | AlpacaAccount | IbkrAccount | CcxtAccount, Field(discriminator="broker")
]
BROKERS = ("paper", "alpaca", "ibkr", "ccxt")


# ---- settings (strategy defaults and subscription overrides)


def _snake_keys(data: Any) -> Any:
    """Accept the payload's camelCase keys (`stopPrice`) as well as snake_case ones."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(_CAMEL.get(key, key))
        if name in out:
            raise _fail(f'"{name}" is given twice (as {name} and as its camelCase form)')
        out[name] = value
    return out


def _only_set(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(model, n) is not None]


class TakeProfitSetting(_Table):
    limit_price: Positive | None = None
    percent: Positive | None = None
    amount: Positive | None = None

    _camel_keys = model_validator(mode="before")(_snake_keys)

    @model_validator(mode="after")
    def _exactly_one(self) -> TakeProfitSetting:
        given = _only_set(self, ("limit_price", "percent", "amount"))
        if len(given) != 1:
            raise _fail(
                "needs exactly one of limit_price, percent, amount"
                f" (got {', '.join(given) or 'none'})"
            )
        return self


class StopLossSetting(_Table):
    type: StopLossType = StopLossType.STOP
    percent: Positive | None = None
    amount: Positive | None = None
    stop_price: Positive | None = None
    limit_price: Positive | None = None
    trail_amount: Positive | None = None
    trail_percent: Positive | None = None

    _camel_keys = model_validator(mode="before")(_snake_keys)

    @model_validator(mode="after")
    def _consistent(self) -> StopLossSetting:
        # The same rules as the payload's stopLoss, so a table that loads is a table that plans.
        wanted: tuple[str, ...]
        if self.type is StopLossType.TRAILING_STOP:
            wanted = ("trail_amount", "trail_percent")
            unwanted: tuple[str, ...] = ("percent", "amount", "stop_price", "limit_price")
        else:
            wanted = ("percent", "amount", "stop_price")
            unwanted = ("trail_amount", "trail_percent")
        given = _only_set(self, wanted)
        if len(given) != 1:
            raise _fail(
                f'type "{self.type}" needs exactly one of {", ".join(wanted)} '
                f"(got {', '.join(given) or 'none'})"
            )
        if extra := _only_set(self, unwanted):
            raise _fail(f'{", ".join(extra)} cannot be used with type "{self.type}"')
        if self.type is StopLossType.STOP_LIMIT and self.limit_price is None:
            raise _fail('type "stop_limit" needs limit_price')
        if self.type is StopLossType.STOP and self.limit_price is not None:
            raise _fail('limit_price needs type "stop_limit"')
        return self


def _parse_days(days: str) -> frozenset[int]:
    try:
        return parse_days(days)
    except ValueError as e:
        raise _fail(str(e)) from None


def _parse_minutes(value: str, allow_24: bool = False) -> int:
    try:
        return parse_minutes(value, allow_24)
    except ValueError as e:
        raise _fail(str(e)) from None


class TradingWindow(_Table):
    """Entry hours; start > end crosses midnight (the session belongs to its start day)."""

    days: str
    start: str
    end: str  # exclusive; "24:00" is the end of the day
    tz: str

    @field_validator("days")
    @classmethod
    def _check_days(cls, days: str) -> str:
        _parse_days(days)
        return days

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str, info: Any) -> str:
        _parse_minutes(value, allow_24=info.field_name == "end")
        return value

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise _fail(
                f'unknown time zone "{tz}"{_did_you_mean(tz, sorted(available_timezones()))}'
            ) from None
        return tz

    @model_validator(mode="after")
    def _not_empty(self) -> TradingWindow:
        if _parse_minutes(self.start) == _parse_minutes(self.end, allow_24=True):
            raise _fail(f'start and end are both {self.start}: use end = "24:00" for a whole day')
        return self

    @property
    def weekdays(self) -> frozenset[int]:
        return parse_days(self.days)

    def is_open_at(self, moment: datetime) -> bool:
        """Whether the aware datetime `moment` falls inside this window."""
        return Window.of(self).is_open_at(moment)


class Settings(_Table):
    """Every §5 setting; None means "not set here": resolution falls through to the next layer."""

    quantity: Positive | None = None
    quantity_type: QuantityType | None = None
    use_signal_quantity: bool | None = None
    quantity_multiplier: Positive | None = None
    subtract_exit_quantity: bool | None = None
    fractional: bool | None = None
    entry_order_type: OrderType | None = None
    exit_order_type: OrderType | None = None
    use_signal_order_type: bool | None = None
    time_in_force: TimeInForce | None = None
    use_signal_time_in_force: bool | None = None
    take_profit: TakeProfitSetting | None = None
    stop_loss: StopLossSetting | None = None
    use_signal_take_profit: bool | None = None
    use_signal_stop_loss: bool | None = None
    sides: Literal["both", "long", "short"] | None = None
    allow_side_swap: bool | None = None
    allow_add: bool | None = None
    ignore_exits: bool | None = None
    cancel_open_orders: bool | None = None
    exit_fill_timeout: Positive | None = None
    breakeven_offset: Annotated[Decimal, Field(allow_inf_nan=False)] | None = None
    trading_windows: list[TradingWindow] | None = None
    allow_exits_outside_windows: bool | None = None
    auto_submit: bool | None = None
    max_position_quantity: Positive | None = None
    max_position_value: Positive | None = None

    def explicit(self) -> dict[str, Any]:
        """The settings this table sets, by name (subscription-only keys excluded)."""
        return {
            name: getattr(self, name)
            for name in Settings.model_fields
            if name in self.model_fields_set and getattr(self, name) is not None
        }


# ---- strategies and subscriptions


class StrategyConfig(_Table):
    # repr=False: a logged or printed config must not reveal the secrets.
    token: str = Field(repr=False)
    passphrase: str | None = Field(default=None, min_length=1, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    rate_limit_per_minute: int = Field(default=60, ge=1)
    rate_limit_per_hour: int = Field(default=500, ge=1)
    dedupe_window: Decimal = Field(default=Decimal(5), ge=0)
    max_signal_age: Positive | None = None
    allowed_ips: list[Network] = []
    trusted_proxies: list[Network] = []
    defaults: Settings = Field(default_factory=Settings)

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: str) -> str:
        # The token is the URL's only credential: demand ~128 bits, never echo it back.
        hint = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        if "REPLACE-ME" in token.upper():  # config.example.toml's, which anyone can read
            raise _fail(f"the example's placeholder token; {hint}")
        if len(token) < MIN_TOKEN_LENGTH:
            raise _fail(
                f"too weak: {len(token)} characters, at least {MIN_TOKEN_LENGTH} needed "
                f"(about 128 bits; {hint})"
            )
        if not _TOKEN.fullmatch(token):
            raise _fail(f"must use only the URL-safe characters A-Z a-z 0-9 _ - ({hint})")
        if len(set(token)) < 8:
            raise _fail(f"too weak: fewer than 8 distinct characters ({hint})")
        return token

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, secret: str | None) -> str | None:
        if secret is not None and not _webhook_key(secret):
            raise _fail('must be "whsec_" followed by base64, or a raw secret (not empty)')
        return secret

    @property
    def webhook_key(self) -> bytes | None:
        """The HMAC key: base64-decoded after "whsec_" (Standard Webhooks), else the raw bytes."""
        return _webhook_key(self.webhook_secret) if self.webhook_secret else None

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.allowed_ips)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.trusted_proxies)


def _webhook_key(secret: str) -> bytes | None:
    if not secret.startswith("whsec_"):
        return secret.encode() or None
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True) or None
    except (binascii.Error, ValueError):
        return None


class SubscriptionConfig(Settings):
    strategy: str
    account: str
    enabled: bool = True


# ---- the root


class _EnvOverrides(PydanticBaseSettingsSource):
    """`TRADEPIPE_A__B__C` variables, with table names matched to the file's spelling.

    Variable names cannot hold "-" and pydantic-settings lower-cases them, so
    TRADEPIPE_SUBSCRIPTIONS__TREND_PAPER__ENABLED must reach the table the file calls `trend-paper`.
    """

    def __init__(self, env: PydanticBaseSettingsSource, file_data: dict[str, Any]) -> None:
        super().__init__(env.settings_cls)
        self._env, self._file = env, file_data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ delegates to the env source

    def __call__(self) -> dict[str, Any]:
        data = self._env()
        for section in ("accounts", "strategies", "subscriptions"):
            overrides, names = data.get(section), self._file.get(section)
            if isinstance(overrides, dict) and isinstance(names, dict):
                data[section] = {_file_name(k, names): v for k, v in overrides.items()}
        return data


def _env_stem(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _file_name(key: str, names: Mapping[str, Any]) -> str:
    if key in names:
        return key
    matches = [n for n in names if _env_stem(n) == _env_stem(key)]
    return matches[0] if len(matches) == 1 else key


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix="TRADEPIPE_",
        env_nested_delimiter="__",
        env_ignore_empty=True,  # systemd's `Environment=X=` must not blank a key
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    reconciliation: ReconciliationConfig = Field(default_factory=ReconciliationConfig)
    accounts: dict[Name, Account] = {}
    strategies: dict[Name, StrategyConfig] = {}
    subscriptions: dict[Name, SubscriptionConfig] = {}

    _path: Path = PrivateAttr(default=Path("tradepipe.toml"))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: the environment beats the file (SPEC §9); no .env or secrets-dir reading.
        file_data = getattr(init_settings, "init_kwargs", {})
        return _EnvOverrides(env_settings, file_data), init_settings

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Any) -> Config:
        # Cross-references are checked on the raw data too, so they are reported together with
        # field errors instead of only after those are fixed.
        problems = _cross_problems(data) if isinstance(data, dict) else []
        try:
            config = handler(data)
        except ValidationError as e:
            problems = [_describe(err) for err in e.errors()] + problems
        else:
            if not problems:
                return config
        errors: list[Any] = [
            {"type": _fail(msg), "loc": loc, "input": None} for loc, msg in problems
        ]
        raise ValidationError.from_exception_data(cls.__name__, errors, hide_input=True)

    @property
    def path(self) -> Path:
        """The file this configuration was loaded from."""
        return self._path

    def subscriptions_for(self, strategy_name: str) -> list[tuple[str, SubscriptionConfig]]:
        """The enabled subscriptions of a strategy, in file order."""
        return [
            (name, sub)
            for name, sub in self.subscriptions.items()
            if sub.strategy == strategy_name and sub.enabled
        ]

    def strategy_by_token(self, token: str) -> tuple[str, StrategyConfig] | None:
        """The strategy whose token this is; compares against every token in constant time."""
        found = None
        given = token.encode(errors="replace")  # a URL may carry anything
        for name, strategy in self.strategies.items():
            # No early exit: the time taken must not reveal which token matched.
            if hmac.compare_digest(given, strategy.token.encode()):
                found = (name, strategy)
        return found

    def webhook_url(self, strategy_name: str) -> str:
        strategy = self.strategies.get(strategy_name)
        if strategy is None:
            raise ConfigError(_unknown_name("strategy", strategy_name, self.strategies))
        if self.server.public_url:
            base = self.server.public_url
        else:
            host = self.server.host
            # A wildcard listen address is not an address to call; the local one is.
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
            base = f"http://{f'[{host}]' if ':' in host else host}:{self.server.port}"
        return f"{base}/webhook/{strategy.token}"


# ---- error messages


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


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    tp: Any = Config
    for part in loc:
        if (tp := _step(tp, part)) is None:
            return []
    tp = _unwrap(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    keys = list(tp.model_fields)
    if tp in (TakeProfitSetting, StopLossSetting):
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


def _describe(err: Any) -> tuple[tuple[str | int, ...], str]:
    """One pydantic error → (key path, message naming the value and the limit)."""
    raw_loc, kind = tuple(err["loc"]), err["type"]
    loc = list(raw_loc)
    if loc[:1] == ["accounts"] and len(loc) >= 3 and loc[2] in BROKERS:
        del loc[2]  # the discriminated union puts the tag in the path; the file has no such level
    if loc and loc[-1] == "[key]":  # a table name, not a value
        return tuple(loc[:-1]), err["msg"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        return tuple(loc), f'unknown key "{key}"{_did_you_mean(key, _keys_at(raw_loc[:-1]))}'
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


# ---- loading and finding


def load_config(path: Path) -> Config:
    """Read, override from the environment, validate; every problem in one `ConfigError`."""
    path = Path(path).expanduser().absolute()
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None

    # Top-level keys are checked here: BaseSettings would match them case-insensitively and
    # would read "_name" keys as its own options.
    fields = list(Config.model_fields)
    unknown = [k for k in data if k not in fields]
    problems = [f'{_dotted((k,))}: unknown key "{k}"{_did_you_mean(k, fields)}' for k in unknown]
    data = {k: v for k, v in data.items() if k in fields}
    config = None
    try:
        config = Config(**data)
    except ValidationError as e:
        problems += [f"{_dotted(err['loc'])}: {err['msg']}" for err in e.errors()]
    except SettingsError as e:  # an override that should be JSON (a list, a table) and is not
        problems.append(f"environment override: {e} (write arrays and tables as JSON)")
    if problems or config is None:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        overrides = sorted(
            k for k in os.environ if k.upper().startswith("TRADEPIPE_") and "__" in k
        )
        note = [f"(environment overrides applied: {', '.join(overrides)})"] if overrides else []
        raise ConfigError("\n  ".join([f"{path}: {count}:", *problems, *note]))

    journal = config.journal.path.expanduser()
    if not journal.is_absolute():
        config.journal.path = path.parent / journal
    config._path = path
    return config


def find_config_path(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> tuple[Path, bool]:
    """--config, else $TRADEPIPE_CONFIG, else ./tradepipe.toml, else the user config dir (§9)."""
    if explicit is not None:
        path = cwd / Path(explicit).expanduser()
    elif env.get("TRADEPIPE_CONFIG"):
        path = cwd / Path(env["TRADEPIPE_CONFIG"]).expanduser()
    elif (cwd / "tradepipe.toml").exists():
        path = cwd / "tradepipe.toml"
    else:
        import click  # here, not at the top: `tradepipe --help` need not pay for it

        path = Path(click.get_app_dir("tradepipe")) / "tradepipe.toml"
    return path, path.exists()


def new_token() -> str:
    """A fresh strategy token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


_STARTER = """\
# tradepipe configuration, created by `tradepipe serve`.
# Every key is documented in config.example.toml. The token below is the secret part of the
# webhook URL: keep this file private (it is created with mode 0600).

[server]
host = "127.0.0.1"                            # listen address; put a TLS reverse proxy in front
port = 8080
# public_url = "https://trade.example.com"    # the address TradingView reaches, for printed URLs

[journal]
path = "tradepipe.db"                         # relative to this file

# The built-in paper broker: simulated fills, no credentials needed.
[accounts.paper]
broker = "paper"
cash = 100000

# One strategy = one webhook URL: POST /webhook/<token>
[strategies.main]
token = "{token}"

[strategies.main.defaults]
quantity = 1                                  # used when a signal carries no quantity

# Route the strategy's signals to the paper account.
[subscriptions.main-paper]
strategy = "main"
account = "paper"
"""


def write_starter_config(path: Path, token: str) -> None:
    """Write a commented starter config (paper account, strategy `main`), mode 0600."""
    try:
        StrategyConfig(token=token)
    except ValidationError as e:
        raise ConfigError(f"starter token: {e.errors()[0]['msg']}") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: never overwrite a config (and its tokens) that appeared meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"config file {path} already exists") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)  # the umask may only narrow the mode; make it exact
        f.write(_STARTER.replace("{token}", token))
