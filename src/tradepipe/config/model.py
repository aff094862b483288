"""The configuration's pydantic models, one per TOML table, and the root `Config` with its
`TRADEPIPE_…` environment overrides."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tradepipe.config.accounts import (
    Account,
)
from tradepipe.config.fields import Name, Network, Port, Url
from tradepipe.config.messages import _cross_problems, _describe, _fail, _unknown_name
from tradepipe.config.notify import NotifyTarget
from tradepipe.config.settings import FlattenAt, Positive, Settings, _Table
from tradepipe.core.limits import Limits, SubscriptionLimits
from tradepipe.core.settings import BUILTIN
from tradepipe.errors import ConfigError

MIN_TOKEN_LENGTH = 22  # 22 base64url characters carry 132 bits

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _strong_token(token: str) -> str:
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


class ServerConfig(_Table):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: Port = 8080
    public_url: Url | None = None
    shutdown_grace: Annotated[Decimal, Field(ge=0)] = Decimal(10)
    # GET /metrics answers only `Authorization: Bearer <metrics_token>`; unset: not served.
    metrics_token: str | None = Field(default=None, repr=False)

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, token: str | None) -> str | None:
        if token is not None:
            _strong_token(token)  # the same strength as a webhook token
        return token


class JournalConfig(_Table):
    path: Path = Path("tradepipe.db")


class ReconciliationConfig(_Table):
    interval: Annotated[Decimal, Field(ge=0)] = Decimal(300)
    block_entries_on_mismatch: bool = True


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
    # SPEC §14: no signal for this many seconds sends one `silence` notification.
    silence_alert: Positive | None = None
    allowed_ips: list[Network] = Field(default_factory=list)
    trusted_proxies: list[Network] = Field(default_factory=list)
    defaults: Settings = Field(default_factory=Settings)

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: str) -> str:
        return _strong_token(token)

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
    notify: list[NotifyTarget] = []

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
            problems = [_describe(err, cls) for err in e.errors()] + problems
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

    def limits_for(self, subscription_name: str) -> Limits:
        """The account's `[risk]` limits and the subscription's own (SPEC §13), each resolved
        subscription → strategy defaults → built-in default."""
        sub = self.subscriptions[subscription_name]
        strategy = self.strategies.get(sub.strategy)
        defaults = strategy.defaults if strategy is not None else None

        def setting(key: str) -> Any:
            for layer in (sub, defaults):
                if layer is not None and (value := getattr(layer, key)) is not None:
                    return value
            return BUILTIN[key]

        return Limits(
            account=self.accounts[sub.account].risk.limits(),
            subscription=SubscriptionLimits(
                max_trades_per_day=setting("max_trades_per_day"),
                max_consecutive_losses=setting("max_consecutive_losses"),
                loss_cooldown=setting("loss_cooldown"),
            ),
        )

    def flatten_times(self) -> dict[str, FlattenAt]:
        """Each enabled subscription's `flatten_at` (SPEC §13), the subscription's own or its
        strategy's default; subscriptions without one are left out."""
        found = {}
        for name, sub in self.subscriptions.items():
            strategy = self.strategies.get(sub.strategy)
            defaults = strategy.defaults if strategy is not None else None
            flatten_at = sub.flatten_at or (defaults.flatten_at if defaults is not None else None)
            if sub.enabled and flatten_at is not None:
                found[name] = flatten_at
        return found

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
