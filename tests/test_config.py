"""config.py: real TOML files in tmp_path, env overrides, one error listing every problem."""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from decimal import Decimal
from ipaddress import ip_address
from pathlib import Path
from typing import Any, get_args, get_origin

import click
import pytest
from pydantic import BaseModel, ValidationError

from tradepipe.config import (
    Config,
    Settings,
    StopLossSetting,
    StrategyConfig,
    TakeProfitSetting,
    TradingWindow,
    find_config_path,
    load_config,
    new_token,
    write_starter_config,
)
from tradepipe.core.limits import AccountLimits, Amount, SubscriptionLimits
from tradepipe.core.signal import StopLossType
from tradepipe.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
TOKEN = "tok-A_0123456789abcdefghij"
TOKEN_2 = "tok-B_0123456789abcdefghij"


def cfg(
    *, top: str = "", account: str = "", strategy: str = "", sub: str = "", tail: str = ""
) -> str:
    """A valid config with text added inside its tables (`tail`: further tables at the end)."""
    return f"""{top}
[accounts.paper]
broker = "paper"
{account}
[strategies.trend]
token = "{TOKEN}"
{strategy}
[subscriptions.trend-paper]
strategy = "trend"
account = "paper"
{sub}
{tail}
"""


BASE = cfg()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "tradepipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


# ---- unknown keys


WINDOW = "days = 'mon', start = '09:00', end = '10:00', tz = 'UTC'"


@pytest.mark.parametrize(
    ("parts", "path", "suggestion"),
    [
        ({"tail": "[sever]\nport = 1"}, "sever", "server"),
        ({"tail": "[server]\nprot = 1"}, "server.prot", "port"),
        ({"tail": "[journal]\npth = 'x.db'"}, "journal.pth", "path"),
        ({"account": "csh = 1"}, "accounts.paper.csh", "cash"),
        ({"tail": "[accounts.alp]\nbroker = 'alpaca'\npapr = true"}, "accounts.alp.papr", "paper"),
        ({"strategy": "tokn = 'x'"}, "strategies.trend.tokn", "token"),
        (
            {"tail": "[strategies.trend.default]\nquantity = 1"},
            "strategies.trend.default",
            "defaults",
        ),
        (
            {"tail": "[strategies.trend.defaults]\nquantiy = 1"},
            "strategies.trend.defaults.quantiy",
            "quantity",
        ),
        ({"sub": "quantiy = 1"}, "subscriptions.trend-paper.quantiy", "quantity"),
        (
            {"sub": "useSignalQuantity = false"},
            "subscriptions.trend-paper.useSignalQuantity",
            "use_signal_quantity",
        ),
        (
            {"sub": "take_profit = { percnt = 1 }"},
            "subscriptions.trend-paper.take_profit.percnt",
            "percent",
        ),
        (
            {"sub": "stop_loss = { stopPrise = 1 }"},
            "subscriptions.trend-paper.stop_loss.stopPrise",
            "stopPrice",
        ),
        (
            {"sub": f"trading_windows = [{{ {WINDOW}, tzz = 'UTC' }}]"},
            "subscriptions.trend-paper.trading_windows[0].tzz",
            "tz",
        ),
    ],
    ids=[
        "root",
        "server",
        "journal",
        "paper-account",
        "alpaca-account",
        "strategy",
        "strategy-table",
        "strategy-defaults",
        "subscription",
        "subscription-camelcase",
        "take-profit",
        "stop-loss-camelcase",
        "trading-window",
    ],
)
def test_unknown_key_names_path_and_closest_key(
    tmp_path: Path, parts: dict[str, str], path: str, suggestion: str
) -> None:
    message = problems(tmp_path, cfg(**parts))
    key = re.split(r"[.\]]", path)[-1]
    assert f'{path}: unknown key "{key}" (did you mean "{suggestion}"?)' in message
    assert str(tmp_path / "tradepipe.toml") in message


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    message = problems(tmp_path, BASE + "[server]\nzzz = 1\n")
    assert (
        'server.zzz: unknown key "zzz" (valid: host, port, public_url, shutdown_grace)' in message
    )


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ('_env_prefix = "X_"', '_env_prefix: unknown key "_env_prefix"'),
        ("[Server]\nport = 1", 'Server: unknown key "Server" (did you mean "server"?)'),
    ],
    ids=["settings-option", "case"],
)
def test_top_level_keys_are_exact(tmp_path: Path, top: str, expected: str) -> None:
    assert expected in problems(tmp_path, cfg(top=top))


# ---- bad values


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            {"tail": "[server]\nport = 70000\n"},
            "server.port: must be less than or equal to 65535 (got 70000)",
        ),
        ({"tail": "[server]\nport = 'x'\n"}, 'server.port: must be a whole number (got "x")'),
        ({"tail": "[server]\npublic_url = 'trade.example.com'\n"}, "server.public_url:"),
        (
            {"tail": "[accounts.cash]\nbroker = 'paper'\ncash = -1\n"},
            "accounts.cash.cash: must be greater",
        ),
        ({"tail": "[accounts.x]\nbroker = 'alpca'\n"}, 'accounts.x.broker: unknown broker "alpca"'),
        ({"tail": "[accounts.x]\npaper = true\n"}, "accounts.x.broker: required key is missing"),
        (
            {"tail": "[accounts.x]\nbroker = 'ibkr'\nport = 0\n"},
            "accounts.x.port: must be greater than or",
        ),
        (
            {"tail": "[accounts.x]\nbroker = 'ccxt'\n"},
            "accounts.x.exchange: required key is missing",
        ),
        (
            {"tail": "[strategies.trend.defaults]\nquantity = 0\n"},
            "strategies.trend.defaults.quantity: must be greater than 0 (got 0)",
        ),
        (
            {"sub": "sides = 'longg'\n"},
            "subscriptions.trend-paper.sides: must be 'both', 'long' or 'short' (got \"longg\")",
        ),
        (
            {"sub": "time_in_force = 'forever'\n"},
            "subscriptions.trend-paper.time_in_force: must be 'day', 'gtc'",
        ),
        (
            {"sub": "quantity_type = 'shares'\n"},
            "subscriptions.trend-paper.quantity_type: must be 'fixed_quantity'",
        ),
        (
            {"sub": "exit_fill_timeout = 0\n"},
            "subscriptions.trend-paper.exit_fill_timeout: must be greater than 0 (got 0)",
        ),
        (
            {"sub": "max_position_value = nan\n"},
            "subscriptions.trend-paper.max_position_value: must be a finite number (got nan)",
        ),
        (
            {"sub": "enabled = 'maybe'\n"},
            'subscriptions.trend-paper.enabled: must be true or false (got "maybe")',
        ),
        (
            {"strategy": "rate_limit_per_minute = 0\n"},
            "strategies.trend.rate_limit_per_minute: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"strategy": "dedupe_window = -1\n"},
            "strategies.trend.dedupe_window: must be greater than or equal to 0 (got -1)",
        ),
        (
            {"strategy": "max_signal_age = 0\n"},
            "strategies.trend.max_signal_age: must be greater than 0 (got 0)",
        ),
        (
            {"strategy": "allowed_ips = ['1.2.3.999']\n"},
            'strategies.trend.allowed_ips[0]: "1.2.3.999" is not an IP address or CIDR network',
        ),
        (
            {"strategy": "trusted_proxies = ['10.0.0.1/8']\n"},
            'strategies.trend.trusted_proxies[0]: "10.0.0.1/8" has host bits set '
            '(did you mean "10.0.0.0/8"?)',
        ),
        (
            {"strategy": "webhook_secret = 'whsec_!!!'\n"},
            'strategies.trend.webhook_secret: must be "whsec_" followed by base64',
        ),
        (
            {"tail": "[accounts.'bad name']\nbroker = 'paper'\n"},
            'accounts."bad name": name "bad name" must',
        ),
        ({"tail": "[strategies.a--b]\ntoken = 'x'\n"}, 'strategies.a--b: name "a--b" must be'),
        ({"tail": f"[strategies.{'n' * 41}]"}, f'name "{"n" * 41}" must be 1-40'),
        ({"top": "server = 5\n"}, "server: must be a table (got 5)"),
    ],
    ids=[
        "port-range",
        "port-type",
        "public-url",
        "cash",
        "broker-typo",
        "broker-missing",
        "ibkr-port",
        "ccxt-exchange",
        "quantity",
        "sides",
        "time-in-force",
        "quantity-type",
        "exit-fill-timeout",
        "nan",
        "bool",
        "rate-limit",
        "dedupe-window",
        "max-signal-age",
        "allowed-ip",
        "trusted-proxy-host-bits",
        "webhook-secret",
        "name-space",
        "name-double-separator",
        "name-too-long",
        "table-type",
    ],
)
def test_bad_value_names_path_value_and_limit(
    tmp_path: Path, parts: dict[str, str], expected: str
) -> None:
    assert expected in problems(tmp_path, cfg(**parts))


# ---- take_profit, stop_loss


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("{ limitPrice = 110 }", TakeProfitSetting(limit_price=Decimal(110))),
        ("{ limit_price = 110 }", TakeProfitSetting(limit_price=Decimal(110))),
        ("{ percent = 5 }", TakeProfitSetting(percent=Decimal(5))),
        ("{ amount = 2.5 }", TakeProfitSetting(amount=Decimal("2.5"))),
    ],
    ids=["camel", "snake", "percent", "amount"],
)
def test_take_profit_accepts_camel_and_snake_keys(
    tmp_path: Path, table: str, expected: TakeProfitSetting
) -> None:
    config = load(tmp_path, BASE + f"take_profit = {table}\n")
    assert config.subscriptions["trend-paper"].take_profit == expected


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("{ percent = 2 }", StopLossSetting(percent=Decimal(2))),
        ("{ stopPrice = 95 }", StopLossSetting(stop_price=Decimal(95))),
        ("{ stop_price = 95 }", StopLossSetting(stop_price=Decimal(95))),
        (
            "{ type = 'stop_limit', stopPrice = 95, limitPrice = 94 }",
            StopLossSetting(
                type=StopLossType.STOP_LIMIT, stop_price=Decimal(95), limit_price=Decimal(94)
            ),
        ),
        (
            "{ type = 'trailing_stop', trailAmount = 1 }",
            StopLossSetting(type=StopLossType.TRAILING_STOP, trail_amount=Decimal(1)),
        ),
        (
            "{ type = 'trailing_stop', trail_percent = 1.5 }",
            StopLossSetting(type=StopLossType.TRAILING_STOP, trail_percent=Decimal("1.5")),
        ),
    ],
    ids=["percent", "camel", "snake", "stop-limit", "trailing-camel", "trailing-snake"],
)
def test_stop_loss_accepts_camel_and_snake_keys(
    tmp_path: Path, table: str, expected: StopLossSetting
) -> None:
    config = load(tmp_path, BASE + f"stop_loss = {table}\n")
    assert config.subscriptions["trend-paper"].stop_loss == expected


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("take_profit = {}", "needs exactly one of limit_price, percent, amount (got none)"),
        ("take_profit = { percent = 1, amount = 2 }", "(got percent, amount)"),
        ("take_profit = { percent = 0 }", "take_profit.percent: must be greater than 0"),
        ("take_profit = { limitPrice = 1, limit_price = 2 }", '"limit_price" is given twice'),
        ("stop_loss = { type = 'stop' }", 'type "stop" needs exactly one of percent, amount'),
        ("stop_loss = { percent = 1, stopPrice = 2 }", "(got percent, stop_price)"),
        ("stop_loss = { type = 'stop_limit', percent = 1 }", 'type "stop_limit" needs limit_price'),
        ("stop_loss = { percent = 1, limitPrice = 2 }", 'limit_price needs type "stop_limit"'),
        ("stop_loss = { type = 'trailing_stop', percent = 1 }", "exactly one of trail_amount"),
        (
            "stop_loss = { type = 'trailing_stop', trailAmount = 1, percent = 1 }",
            'percent cannot be used with type "trailing_stop"',
        ),
        ("stop_loss = { percent = 1, trailPercent = 1 }", "trail_percent cannot be used"),
        ("stop_loss = { type = 'stopp', percent = 1 }", "stop_loss.type: must be 'stop'"),
    ],
    ids=[
        "tp-none",
        "tp-two",
        "tp-zero",
        "tp-twice",
        "sl-none",
        "sl-two",
        "sl-stop-limit-without-limit",
        "sl-limit-without-stop-limit",
        "sl-trailing-without-trail",
        "sl-trailing-with-percent",
        "sl-stop-with-trail",
        "sl-type",
    ],
)
def test_take_profit_and_stop_loss_consistency(tmp_path: Path, setting: str, expected: str) -> None:
    message = problems(tmp_path, BASE + setting + "\n")
    assert "subscriptions.trend-paper." in message
    assert expected in message


# ---- trading windows


def window(days: str = "mon-fri", start: str = "09:30", end: str = "16:00", tz: str = "UTC") -> str:
    table = f"days = '{days}', start = '{start}', end = '{end}', tz = '{tz}'"
    return f"trading_windows = [{{ {table} }}]\n"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tz": "America/New_Yrok"}, 'unknown time zone "America/New_Yrok" (did you mean'),
        ({"tz": "Mars/Olympus"}, 'unknown time zone "Mars/Olympus"'),
        ({"tz": "../../etc/passwd"}, "unknown time zone"),
        ({"days": "mon-fry"}, '"mon-fry" must be days like "mon-fri"'),
        ({"days": "weekdays"}, '"weekdays" must be days'),
        ({"days": ""}, '"" must be days'),
        ({"start": "25:00"}, '"25:00" must be a time "HH:MM" from 00:00 to 23:59'),
        ({"start": "9.30"}, '"9.30" must be a time'),
        ({"end": "16:60"}, '"16:60" must be a time "HH:MM" from 00:00 to 24:00'),
        ({"start": "24:00"}, '"24:00" must be a time'),
        ({"start": "10:00", "end": "10:00"}, 'start and end are both 10:00: use end = "24:00"'),
    ],
    ids=[
        "tz-typo",
        "tz-unknown",
        "tz-path",
        "day-typo",
        "day-word",
        "day-empty",
        "hour",
        "format",
        "minute",
        "start-24",
        "empty-window",
    ],
)
def test_trading_window_rejects(tmp_path: Path, kwargs: dict[str, str], expected: str) -> None:
    message = problems(tmp_path, BASE + window(**kwargs))
    assert "subscriptions.trend-paper.trading_windows[0]" in message
    assert expected in message


@pytest.mark.parametrize(
    ("kwargs", "weekdays"),
    [
        ({}, {0, 1, 2, 3, 4}),
        ({"days": "mon,wed,fri"}, {0, 2, 4}),
        ({"days": "Sat-Sun", "start": "22:00", "end": "02:00"}, {5, 6}),
        ({"days": "fri-mon", "start": "00:00", "end": "24:00"}, {4, 5, 6, 0}),
        ({"days": "tuesday, thu", "tz": "Europe/Berlin"}, {1, 3}),
    ],
    ids=["range", "list", "midnight-crossing", "wrapping-whole-day", "full-names"],
)
def test_trading_window_accepts(tmp_path: Path, kwargs: dict[str, str], weekdays: set[int]) -> None:
    config = load(tmp_path, BASE + window(**kwargs))
    (parsed,) = config.subscriptions["trend-paper"].trading_windows or []
    assert parsed.weekdays == weekdays


@pytest.mark.parametrize(
    ("window_args", "moment", "is_open"),
    [
        (("mon-fri", "09:30", "16:00", "America/New_York"), "2026-03-02T14:30Z", True),  # Mon 9:30
        (("mon-fri", "09:30", "16:00", "America/New_York"), "2026-03-02T21:00Z", False),  # 16:00
        (("mon-fri", "09:30", "16:00", "America/New_York"), "2026-03-07T15:00Z", False),  # Sat
        (("fri", "22:00", "02:00", "UTC"), "2026-03-06T23:00Z", True),  # Fri night
        (("fri", "22:00", "02:00", "UTC"), "2026-03-07T01:59Z", True),  # Sat, Fri's session
        (("fri", "22:00", "02:00", "UTC"), "2026-03-07T02:00Z", False),  # end is exclusive
        (("fri", "22:00", "02:00", "UTC"), "2026-03-06T01:00Z", False),  # Thu's session: none
        (("sun", "18:00", "24:00", "UTC"), "2026-03-08T23:59Z", True),
    ],
    ids=[
        "open",
        "close-exclusive",
        "weekend",
        "night",
        "after-midnight",
        "night-end",
        "before-start-day",
        "end-24",
    ],
)
def test_trading_window_is_open_at(
    window_args: tuple[str, str, str, str], moment: str, is_open: bool
) -> None:
    days, start, end, tz = window_args
    parsed = TradingWindow(days=days, start=start, end=end, tz=tz)
    assert parsed.is_open_at(datetime.fromisoformat(moment).astimezone(UTC)) is is_open


# ---- references and tokens


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            BASE.replace('strategy = "trend"', 'strategy = "trnd"'),
            'subscriptions.trend-paper.strategy: no strategy named "trnd" '
            '(did you mean "trend"? defined: trend)',
        ),
        (
            BASE.replace('account = "paper"', 'account = "live"'),
            'subscriptions.trend-paper.account: no account named "live" (defined: paper)',
        ),
        (
            BASE.replace('[accounts.paper]\nbroker = "paper"\n', ""),
            'subscriptions.trend-paper.account: no account named "paper": none is defined',
        ),
    ],
    ids=["strategy", "account", "no-accounts"],
)
def test_missing_reference_lists_defined_names(tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in problems(tmp_path, toml)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("short-token-123", "too weak: 15 characters, at least 22 needed"),
        ("has spaces in the token so many", "only the URL-safe characters"),
        ("slash/is/not/url/safe/at/all", "only the URL-safe characters"),
        ("abababababababababababababab", "fewer than 8 distinct characters"),
        ("", "too weak: 0 characters"),
    ],
    ids=["short", "space", "slash", "repetitive", "empty"],
)
def test_weak_token_is_an_error_and_never_echoed(tmp_path: Path, token: str, expected: str) -> None:
    message = problems(tmp_path, BASE.replace(TOKEN, token))
    assert "strategies.trend.token: " in message
    assert expected in message
    assert "token_urlsafe(32)" in message
    if token:
        assert token not in message


def test_duplicate_token_names_both_strategies_without_echoing_it(tmp_path: Path) -> None:
    toml = BASE + f'[strategies.other]\ntoken = "{TOKEN}"\n'
    message = problems(tmp_path, toml)
    assert "strategies.other.token: same token as strategies.trend" in message
    assert TOKEN not in message


def test_secrets_are_not_in_repr() -> None:
    strategy = StrategyConfig(token=TOKEN, passphrase="hunter2", webhook_secret="raw-secret")
    assert TOKEN not in repr(strategy)
    assert "hunter2" not in repr(strategy)
    assert strategy.webhook_key == b"raw-secret"


def test_webhook_key_decodes_whsec() -> None:
    strategy = StrategyConfig(token=TOKEN, webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert strategy.webhook_key is not None
    assert len(strategy.webhook_key) == 24


# ---- several problems at once, syntax


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    toml = f"""
[server]
port = 0
[accounts.paper]
broker = "paper"
cash = 0
[strategies.trend]
token = "weak"
[strategies.other]
token = "{TOKEN}"
[strategies.other.defaults]
quantiy = 1
[subscriptions.trend-paper]
strategy = "trend"
account = "papr"
sides = "up"
"""
    message = problems(tmp_path, toml)
    lines = message.splitlines()
    assert lines[0] == f"{tmp_path / 'tradepipe.toml'}: 6 problems:"
    for path in [
        "server.port",
        "accounts.paper.cash",
        "strategies.trend.token",
        "strategies.other.defaults.quantiy",
        "subscriptions.trend-paper.sides",
        "subscriptions.trend-paper.account",
    ]:
        assert any(line.strip().startswith(path + ":") for line in lines), path


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = problems(tmp_path, "[server]\nport = 80\nhost = \n")
    assert message.startswith(f"{tmp_path / 'tradepipe.toml'}: invalid TOML:")
    assert "line 3" in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


# ---- environment overrides


def test_env_overrides_beat_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEPIPE_SERVER__PORT", "9000")
    monkeypatch.setenv("TRADEPIPE_STRATEGIES__TREND__TOKEN", TOKEN_2)
    monkeypatch.setenv("TRADEPIPE_STRATEGIES__TREND__DEFAULTS__QUANTITY", "7")
    monkeypatch.setenv("TRADEPIPE_STRATEGIES__TREND__ALLOWED_IPS", '["10.0.0.0/8"]')
    # Shells cannot spell "trend-paper": the underscore form reaches that table.
    monkeypatch.setenv("TRADEPIPE_SUBSCRIPTIONS__TREND_PAPER__ENABLED", "false")
    config = load(tmp_path, BASE + "[server]\nport = 8080\nhost = '0.0.0.0'\n")
    assert config.server.port == 9000
    assert config.server.host == "0.0.0.0"  # untouched keys keep the file's value
    assert config.strategies["trend"].token == TOKEN_2
    assert config.strategies["trend"].defaults.quantity == Decimal(7)
    assert config.strategies["trend"].allowed_ips == ["10.0.0.0/8"]
    assert config.subscriptions["trend-paper"].enabled is False
    assert list(config.subscriptions) == ["trend-paper"]


@pytest.mark.parametrize(
    "name",
    [
        "TRADEPIPE_CONFIG",
        "TRADEPIPE_PAPER_KEY",
        "TRADEPIPE_ALPACA_PAPER_SECRET",
        "TRADEPIPE_SERVER_KEY",
        "TRADEPIPE_STRATEGIES_KEY",
    ],
)
def test_non_config_env_vars_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "/some/where/or/a-secret")
    assert load(tmp_path, BASE).server.port == 8080


def test_bad_env_override_is_reported_with_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_SERVER__PORT", "http")
    monkeypatch.setenv("TRADEPIPE_SERVER__PROT", "1")
    message = problems(tmp_path, BASE)
    assert 'server.port: must be a whole number (got "http")' in message
    assert 'server.prot: unknown key "prot" (did you mean "port"?)' in message
    assert (
        "environment overrides applied: TRADEPIPE_SERVER__PORT, TRADEPIPE_SERVER__PROT" in message
    )


def test_env_override_that_is_not_json_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_STRATEGIES__TREND__ALLOWED_IPS", "10.0.0.1")
    assert "environment override" in problems(tmp_path, BASE)


# ---- paper instruments (SPEC §12)


@pytest.mark.parametrize(
    ("tables", "specs"),
    [
        ("", {}),
        ("[accounts.paper.instruments.ES]\nmultiplier = 5\n", {"ES": ("5", "0.25", "1")}),
        (
            "[accounts.paper.instruments.CL]\ntick_size = 0.05\nlot_size = 2\n",
            {"CL": ("1000", "0.05", "2")},
        ),
        (
            "[accounts.paper.instruments.ZB]\nmultiplier = 1000\ntick_size = 0.03125\n",
            {"ZB": ("1000", "0.03125", "1")},
        ),
        ("[accounts.paper.instruments.mes]\nmultiplier = 50\n", {"MES": ("50", "0.25", "1")}),
    ],
    ids=["none", "known-root-one-key", "known-root-two-keys", "new-root", "lower-case-root"],
)
def test_a_paper_accounts_instruments_complete_from_spec_12(
    tmp_path: Path, tables: str, specs: dict[str, tuple[str, str, str]]
) -> None:
    from tradepipe.core.instruments import ContractSpec

    account = load(tmp_path, BASE + tables).accounts["paper"]
    expected = {root: ContractSpec(*map(Decimal, values)) for root, values in specs.items()}
    assert account.contract_specs() == expected


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        (
            "[accounts.paper.instruments.ES]\nmultiplyer = 5\n",
            'accounts.paper.instruments.ES.multiplyer: unknown key "multiplyer"'
            ' (did you mean "multiplier"?)',
        ),
        (
            "[accounts.paper.instruments.ES]\nmultiplier = 0\n",
            "accounts.paper.instruments.ES.multiplier: must be greater than 0 (got 0)",
        ),
        (
            "[accounts.paper.instruments.ZB]\nmultiplier = 1000\n",
            "accounts.paper.instruments: ZB is not a futures root tradepipe knows (ES, MES, NQ,"
            " MNQ, YM, MYM, RTY, M2K, CL, MCL, GC, MGC): give its tick_size",
        ),
        (
            '[accounts.paper.instruments."E-S"]\nmultiplier = 5\n',
            'accounts.paper.instruments: "E-S" is not a futures root',
        ),
        (
            "[accounts.paper.instruments]\nES = 50\n",
            "accounts.paper.instruments.ES: must be a table (got 50)",
        ),
        (
            "[accounts.paper.instruments.ES]\nmultiplier = 5\n[accounts.paper.instruments.es]\n",
            'accounts.paper.instruments: the root "ES" is given twice',
        ),
        (
            "[accounts.ib]\nbroker = 'ibkr'\n[accounts.ib.instruments.ES]\nmultiplier = 5\n",
            'accounts.ib.instruments: unknown key "instruments"',  # IB's contract details say
        ),
    ],
    ids=["typo", "zero", "new-root-half", "not-a-root", "not-a-table", "twice", "not-paper"],
)
def test_a_bad_instruments_table_is_named_with_its_key(
    tmp_path: Path, tables: str, expected: str
) -> None:
    assert expected in problems(tmp_path, BASE + tables)


def test_an_instruments_key_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_ACCOUNTS__PAPER__INSTRUMENTS__ES__MULTIPLIER", "5")
    account = load(tmp_path, BASE).accounts["paper"]
    assert account.contract_specs()["ES"].multiplier == Decimal(5)


# ---- paths


@pytest.mark.parametrize(
    ("journal", "expected"),
    [
        (None, "tradepipe.db"),
        ("data/journal.db", "data/journal.db"),
        ("/var/lib/tradepipe/j.db", "/var/lib/tradepipe/j.db"),
    ],
    ids=["default", "relative", "absolute"],
)
def test_journal_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: str | None, expected: str
) -> None:
    (tmp_path / "etc").mkdir()
    monkeypatch.chdir(tmp_path)  # and not to the working directory
    toml = BASE + (f"[journal]\npath = '{journal}'\n" if journal else "")
    config = load_config(write(tmp_path / "etc", toml))
    assert config.journal.path == tmp_path / "etc" / expected
    assert config.path == tmp_path / "etc" / "tradepipe.toml"


@pytest.mark.parametrize(
    ("explicit", "env", "local", "expected"),
    [
        ("given.toml", "env.toml", True, "cwd/given.toml"),
        ("/abs/given.toml", "env.toml", True, "/abs/given.toml"),
        (None, "env.toml", True, "cwd/env.toml"),
        (None, "", True, "cwd/tradepipe.toml"),
        (None, None, True, "cwd/tradepipe.toml"),
        (None, None, False, "appdir"),
    ],
    ids=["explicit", "explicit-absolute", "env", "empty-env", "local", "user-dir"],
)
def test_find_config_path_order(
    tmp_path: Path, explicit: str | None, env: str | None, local: bool, expected: str
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    if local:
        (cwd / "tradepipe.toml").write_text("")
    path, exists = find_config_path(
        Path(explicit) if explicit else None,
        {"TRADEPIPE_CONFIG": env} if env is not None else {},
        cwd,
    )
    if expected == "appdir":
        assert path == Path(click.get_app_dir("tradepipe")) / "tradepipe.toml"
    else:
        assert path == (Path(expected) if expected.startswith("/") else tmp_path / expected)
    assert exists == path.exists()


# ---- starter config, example config


def test_starter_config_loads_with_mode_0600(tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "new" / "dir" / "tradepipe.toml"
    write_starter_config(path, token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(path)
    assert config.strategy_by_token(token) == ("main", config.strategies["main"])
    assert [name for name, _ in config.subscriptions_for("main")] == ["main-paper"]
    assert config.accounts["paper"].broker == "paper"
    assert config.accounts["paper"].cash == Decimal(100000)
    assert config.webhook_url("main") == f"http://127.0.0.1:8080/webhook/{token}"


def test_starter_config_never_overwrites(tmp_path: Path) -> None:
    path = write(tmp_path, "keep me")
    with pytest.raises(ConfigError, match="already exists"):
        write_starter_config(path, new_token())
    assert path.read_text() == "keep me"


def test_starter_config_rejects_a_weak_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too weak"):
        write_starter_config(tmp_path / "t.toml", "abc")
    assert not (tmp_path / "t.toml").exists()


def test_example_config_refuses_its_placeholder_tokens() -> None:
    # A copied example must not run with a URL secret anyone can read in the repository.
    with pytest.raises(ConfigError) as refused:
        load_config(EXAMPLE)
    assert "2 problems" in str(refused.value)
    for name in ("trend", "crypto"):
        assert f"strategies.{name}.token: the example's placeholder token; generate one with" in (
            str(refused.value)
        )
    assert "example-token" not in str(refused.value)  # a token is never echoed


def test_example_config_loads_once_its_tokens_are_replaced(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    for placeholder in re.findall(r'token = "(example-token-REPLACE-ME-\d+)"', text):
        text = text.replace(placeholder, new_token())
    config = load_config(write(tmp_path, text))
    assert set(config.accounts) == {"paper", "alpaca-paper", "ib", "binance"}
    assert config.strategies["trend"].defaults.explicit().keys() == Settings.model_fields.keys()


def _models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in get_args(tp) for m in _models(arg)] if get_origin(tp) else []


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Config]
    missing = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if name not in text:
                missing.append(f"{model.__name__}.{name}")
            todo += _models(field.annotation)
    assert len(seen) >= 13
    assert missing == []


# ---- helpers on Config


def test_subscriptions_for_lists_enabled_ones_in_file_order(tmp_path: Path) -> None:
    toml = BASE + "".join(
        f'[subscriptions.{name}]\nstrategy = "{strategy}"\naccount = "paper"\nenabled = {enabled}\n'
        for name, strategy, enabled in [
            ("z-last", "trend", "true"),
            ("off", "trend", "false"),
            ("a-other", "other", "true"),
            ("b-first", "trend", "true"),
        ]
    )
    toml += f'[strategies.other]\ntoken = "{TOKEN_2}"\n'
    config = load(tmp_path, toml)
    assert [n for n, _ in config.subscriptions_for("trend")] == ["trend-paper", "z-last", "b-first"]
    assert [n for n, _ in config.subscriptions_for("other")] == ["a-other"]
    assert config.subscriptions_for("nobody") == []


@pytest.mark.parametrize(
    ("token", "expected"),
    [(TOKEN, "trend"), (TOKEN_2, "other"), (TOKEN[:-1], None), ("", None), ("ü" * 30, None)],
    ids=["first", "second", "prefix", "empty", "non-ascii"],
)
def test_strategy_by_token(tmp_path: Path, token: str, expected: str | None) -> None:
    config = load(tmp_path, BASE + f'[strategies.other]\ntoken = "{TOKEN_2}"\n')
    found = config.strategy_by_token(token)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("", f"http://127.0.0.1:8080/webhook/{TOKEN}"),
        ("host = '0.0.0.0'\nport = 9000\n", f"http://127.0.0.1:9000/webhook/{TOKEN}"),
        ("host = '::'\n", f"http://[::1]:8080/webhook/{TOKEN}"),
        ("public_url = 'https://t.example.com/tp/'\n", f"https://t.example.com/tp/webhook/{TOKEN}"),
    ],
    ids=["default", "wildcard", "ipv6", "public-url"],
)
def test_webhook_url(tmp_path: Path, server: str, expected: str) -> None:
    assert load(tmp_path, BASE + "[server]\n" + server).webhook_url("trend") == expected


def test_webhook_url_of_unknown_strategy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='no strategy named "trnd"'):
        load(tmp_path, BASE).webhook_url("trnd")


def test_settings_explicit_returns_only_keys_set(tmp_path: Path) -> None:
    toml = BASE + "quantity = 3\nallow_add = false\n[strategies.trend.defaults]\nsides = 'long'\n"
    config = load(tmp_path, toml)
    assert config.subscriptions["trend-paper"].explicit() == {
        "quantity": Decimal(3),
        "allow_add": False,
    }
    assert config.strategies["trend"].defaults.explicit() == {"sides": "long"}
    assert Settings().explicit() == {}


def test_network_properties_parse_the_validated_lists() -> None:
    strategy = StrategyConfig(
        token=TOKEN, allowed_ips=["1.2.3.4", "10.0.0.0/8"], trusted_proxies=["::1"]
    )
    assert ip_address("10.9.8.7") in strategy.allowed_networks[1]
    assert ip_address("1.2.3.4") in strategy.allowed_networks[0]
    assert ip_address("::1") in strategy.trusted_proxy_networks[0]


def test_config_built_directly_raises_the_same_messages() -> None:
    with pytest.raises(ValidationError) as info:
        Config(subscriptions={"s": {"strategy": "x", "account": "y", "sides": "up"}})
    messages = {(tuple(e["loc"]), e["msg"]) for e in info.value.errors()}
    assert (
        ("subscriptions", "s", "strategy"),
        'no strategy named "x": none is defined',
    ) in messages
    assert (
        ("subscriptions", "s", "sides"),
        "must be 'both', 'long' or 'short' (got \"up\")",
    ) in messages


def test_an_ib_account_refuses_client_id_0(tmp_path: Path) -> None:
    # With client id 0, ib_async binds the orders typed into TWS by hand to this client: the
    # daemon would cancel or move the operator's own orders as its own.
    text = "[accounts.ib]\nbroker = 'ibkr'\nclient_id = 0\n"
    assert "accounts.ib.client_id: must be 1 or more (got 0)" in problems(tmp_path, text)
    assert load(tmp_path, "[accounts.ib]\nbroker = 'ibkr'\nclient_id = 1\n")


# ---- risk limits (SPEC §13): parsed and validated, not yet enforced


def test_risk_defaults_are_spec_13s(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    risk = config.accounts["paper"].risk
    assert risk.limits() == AccountLimits()  # core's defaults: 100% per order, 60 a minute
    assert (risk.on_trip, risk.day_starts_at, risk.timezone) == ("reduce_only", "00:00", "UTC")
    limits = config.limits_for("trend-paper")
    assert limits.subscription == SubscriptionLimits()


@pytest.mark.parametrize("broker", ["paper", "alpaca", "ibkr", "ccxt"])
def test_every_account_kind_takes_a_risk_table(tmp_path: Path, broker: str) -> None:
    extra = 'exchange = "binance"\n' if broker == "ccxt" else ""
    toml = BASE.replace('broker = "paper"', f'broker = "{broker}"\n{extra}') + (
        '[accounts.paper.risk]\nmax_daily_loss = "2%"\nmax_drawdown = 5000\n'
        'max_gross_exposure = "50,000"\nmax_order_value = 2500.5\nmax_open_positions = 3\n'
        'max_orders_per_minute = 10\non_trip = "flatten"\nday_starts_at = "09:30"\n'
        'timezone = "America/New_York"\n'
    )
    risk = load_config(write(tmp_path, toml)).accounts["paper"].risk
    assert risk.limits() == AccountLimits(
        max_order_value=Amount(Decimal("2500.5")),
        max_open_positions=3,
        max_gross_exposure=Amount(Decimal(50000)),
        max_daily_loss=Amount(Decimal(2), is_percent=True),
        max_drawdown=Amount(Decimal(5000)),
        max_orders_per_minute=10,
    )
    assert (risk.on_trip, risk.day_starts_at, risk.timezone) == (
        "flatten",
        "09:30",
        "America/New_York",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('max_daily_loss = "lots"', 'max_daily_loss: "lots" must be an amount like 50000'),
        ("max_drawdown = 0", 'max_drawdown: "0" must be more than 0'),
        ('max_order_value = "-5%"', 'max_order_value: "-5%" must be more than 0'),
        ("max_gross_exposure = true", "max_gross_exposure: must be an amount like 50000 or a"
         ' share like "2%" (got true)'),
        ("max_open_positions = 0", "max_open_positions: must be greater than or equal to 1"),
        ("max_orders_per_minute = 1.5", "max_orders_per_minute: must be a whole number"),
        ('on_trip = "halt"', "on_trip: must be 'reduce_only' or 'flatten' (got \"halt\")"),
        ('day_starts_at = "24:00"', 'day_starts_at: "24:00" must be a time "HH:MM" from 00:00'),
        ('timezone = "Europe/Londn"', 'timezone: unknown time zone "Europe/Londn" (did you mean'
         ' "Europe/London"?)'),
        ("max_drawdon = 1", 'max_drawdon: unknown key "max_drawdon" (did you mean'
         ' "max_drawdown"?)'),
    ],
    ids=["amount", "zero", "negative-percent", "bool", "positions", "per-minute", "on-trip",
         "day-start", "timezone", "unknown-key"],
)
def test_a_bad_risk_key_is_named_with_its_value(tmp_path: Path, line: str, expected: str) -> None:
    message = problems(tmp_path, cfg(account=f"[accounts.paper.risk]\n{line}\n"))
    assert f"accounts.paper.risk.{expected}" in message


def test_a_risk_key_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_ACCOUNTS__PAPER__RISK__MAX_DAILY_LOSS", "2%")
    risk = load_config(write(tmp_path, BASE)).accounts["paper"].risk
    assert risk.max_daily_loss == Amount(Decimal(2), is_percent=True)


def test_subscription_limits_resolve_subscription_then_strategy(tmp_path: Path) -> None:
    toml = cfg(
        strategy="[strategies.trend.defaults]\nmax_trades_per_day = 5\nloss_cooldown = 600\n"
        'flatten_at = { time = "15:55", days = "mon-fri", tz = "America/New_York" }\n',
        sub="max_trades_per_day = 2\nmax_consecutive_losses = 3\ncancel_after = 30\n"
        "use_signal_delay = false\n",
    )
    config = load_config(write(tmp_path, toml))
    assert config.limits_for("trend-paper").subscription == SubscriptionLimits(
        max_trades_per_day=2, max_consecutive_losses=3, loss_cooldown=600
    )
    flatten_at = config.strategies["trend"].defaults.flatten_at
    assert flatten_at is not None
    assert (flatten_at.minutes, flatten_at.weekdays) == (15 * 60 + 55, frozenset(range(5)))
    sub = config.subscriptions["trend-paper"]
    assert (sub.cancel_after, sub.use_signal_delay, sub.use_signal_cancel_after) == (
        Decimal(30),
        False,
        None,
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_trades_per_day = 0", "max_trades_per_day: must be greater than or equal to 1"),
        ("max_consecutive_losses = -1", "max_consecutive_losses: must be greater than or equal"),
        ("loss_cooldown = 1.5", "loss_cooldown: must be a whole number"),
        ("cancel_after = 0", "cancel_after: must be greater than 0"),
        ('use_signal_delay = "maybe"', "use_signal_delay: must be true or false"),
        (
            'flatten_at = { time = "25:00", days = "mon-fri", tz = "UTC" }',
            'flatten_at.time: "25:00" must be a time "HH:MM"',
        ),
        (
            'flatten_at = { time = "15:55", days = "weekdays", tz = "UTC" }',
            'flatten_at.days: "weekdays" must be days like "mon-fri"',
        ),
        (
            'flatten_at = { time = "15:55", days = "mon-fri", tz = "America/New_Yrok" }',
            'flatten_at.tz: unknown time zone "America/New_Yrok"',
        ),
        (
            'flatten_at = { time = "15:55", days = "mon-fri", tzz = "UTC" }',
            'flatten_at.tzz: unknown key "tzz" (did you mean "tz"?)',
        ),
    ],
    ids=["trades", "losses", "cooldown", "cancel-after", "bool", "flatten-time", "flatten-days",
         "flatten-tz", "flatten-unknown"],
)
def test_a_bad_subscription_limit_is_named_with_its_value(
    tmp_path: Path, line: str, expected: str
) -> None:
    assert f"subscriptions.trend-paper.{expected}" in problems(tmp_path, cfg(sub=line))
