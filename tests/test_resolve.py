"""Resolution (SPEC §5): signal (where allowed) → subscription → strategy defaults → built-in,
for every setting key, written in the real TOML of both places. Pure apart from reading the
config file the way `tradepipe serve` does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import write_config
from tradepipe.config import Settings, load_config
from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.resolve import BUILTIN, Source, resolve_signal
from tradepipe.core.settings import SETTING_NAMES
from tradepipe.core.signal import Action, QuantityType, Signal, StopLoss, TakeProfit

D = Decimal
WINDOW = '{ days = "mon-fri", start = "09:30", end = "16:00", tz = "America/New_York" }'

# Every setting key: a TOML value that is not the built-in default, and how the intent shows it.
NOT_DEFAULT = {
    "quantity": ("3", D(3)),
    "quantity_type": ('"dollar_amount"', QuantityType.DOLLAR_AMOUNT),
    "use_signal_quantity": ("false", False),
    "quantity_multiplier": ("2", D(2)),
    "subtract_exit_quantity": ("true", True),
    "fractional": ("true", True),
    "entry_order_type": ('"limit"', OrderType.LIMIT),
    "exit_order_type": ('"stop"', OrderType.STOP),
    "use_signal_order_type": ("false", False),
    "time_in_force": ('"gtc"', TimeInForce.GTC),
    "use_signal_time_in_force": ("false", False),
    "take_profit": ("{ percent = 5 }", TakeProfit(percent=D(5))),
    "stop_loss": ("{ amount = 2 }", StopLoss(amount=D(2))),
    "use_signal_take_profit": ("false", False),
    "use_signal_stop_loss": ("false", False),
    "sides": ('"long"', "long"),
    "allow_side_swap": ("false", False),
    "allow_add": ("true", True),
    "ignore_exits": ("true", True),
    "cancel_open_orders": ("false", False),
    "exit_fill_timeout": ("30", D(30)),
    "breakeven_offset": ("0.5", D("0.5")),
    "trading_windows": (f"[{WINDOW}]", 1),
    "allow_exits_outside_windows": ("false", False),
    "auto_submit": ("false", False),
    "max_position_quantity": ("10", D(10)),
    "max_position_value": ("1000", D(1000)),
    "max_trades_per_day": ("5", 5),
    "max_consecutive_losses": ("3", 3),
    "loss_cooldown": ("600", 600),
    "flatten_at": ('{ time = "15:55", days = "mon-fri", tz = "America/New_York" }', None),
    "cancel_after": ("30", D(30)),
    "use_signal_cancel_after": ("false", False),
    "use_signal_delay": ("false", False),
}
# SPEC §13's subscription limits (Config.limits_for) and its flatten_at (Config.flatten_times,
# the engine's scheduler): the subscription's, not one signal's, so not on the intent.
# cancel_after is on it; use_signal_delay and use_signal_cancel_after are switches.
NOT_ON_INTENT = {
    "max_trades_per_day",
    "max_consecutive_losses",
    "loss_cooldown",
    "flatten_at",
}
# The use_signal_* switches decide whether a signal's field counts; they show in the intent
# through what they switch (tested below), not as values of their own.
SWITCHES = {k for k in NOT_DEFAULT if k.startswith("use_signal_")}
ON_INTENT = sorted(set(NOT_DEFAULT) - SWITCHES - NOT_ON_INTENT)


def test_every_setting_key_has_a_builtin_default_and_a_row_here():
    assert set(Settings.model_fields) == set(BUILTIN) == set(NOT_DEFAULT)
    # One list of names: config's table declares them in core's order.
    assert tuple(Settings.model_fields) == SETTING_NAMES == tuple(BUILTIN)


def intent_for(
    tmp_path, *, strategy: str = "", subscription: str = "", signal: Signal | None = None
):
    config = load_config(
        write_config(
            tmp_path, strategy="[strategies.trend.defaults]\n" + strategy, subscription=subscription
        )
    )
    signal = signal or Signal(ticker="AAPL", action=Action.BUY)
    return resolve_signal(
        signal, config.subscriptions["trend-paper"], config.strategies["trend"].defaults
    )


def shown(intent, key):
    # The multiplier is applied during resolution; the intent keeps only its provenance.
    value = getattr(intent, key) if hasattr(intent, key) else intent.provenance[key].value
    return len(value) if key == "trading_windows" else value


@pytest.mark.parametrize("key", ON_INTENT)
def test_a_key_nobody_sets_takes_the_builtin_default(tmp_path, key):
    intent = intent_for(tmp_path)
    builtin = BUILTIN[key]
    assert shown(intent, key) == (len(builtin or ()) if key == "trading_windows" else builtin)
    assert intent.provenance[key].source is Source.DEFAULT


@pytest.mark.parametrize("key", ON_INTENT)
def test_a_key_in_the_strategy_defaults_applies(tmp_path, key):
    toml, expected = NOT_DEFAULT[key]
    intent = intent_for(tmp_path, strategy=f"{key} = {toml}\n")
    assert shown(intent, key) == expected
    assert intent.provenance[key].source is Source.STRATEGY


@pytest.mark.parametrize("key", ON_INTENT)
def test_the_subscription_overrides_the_strategy_defaults(tmp_path, key):
    toml, expected = NOT_DEFAULT[key]
    # The strategy says the built-in default out loud; the subscription's value still wins.
    default = _toml(BUILTIN[key])
    strategy = f"{key} = {default}\n" if default is not None else ""
    intent = intent_for(tmp_path, strategy=strategy, subscription=f"{key} = {toml}\n")
    assert shown(intent, key) == expected
    assert intent.provenance[key].source is Source.SUBSCRIPTION


def _toml(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)
    return f'"{value}"'


SIGNAL = Signal(
    ticker="AAPL",
    action=Action.BUY,
    quantity=D(5),
    order_type=OrderType.MARKET,
    time_in_force=TimeInForce.IOC,
    take_profit=TakeProfit(amount=D(9)),
    stop_loss=StopLoss(percent=D(1)),
    cancel_after=D(60),
)


# (key, the switch, the signal's value, the subscription's value as TOML, and as resolved)
SIGNAL_FIELDS = [
    ("quantity", "use_signal_quantity", D(5), "3", D(3)),
    ("entry_order_type", "use_signal_order_type", OrderType.MARKET, '"limit"', OrderType.LIMIT),
    ("exit_order_type", "use_signal_order_type", OrderType.MARKET, '"limit"', OrderType.LIMIT),
    ("time_in_force", "use_signal_time_in_force", TimeInForce.IOC, '"gtc"', TimeInForce.GTC),
    (
        "take_profit",
        "use_signal_take_profit",
        TakeProfit(amount=D(9)),
        "{ percent = 5 }",
        TakeProfit(percent=D(5)),
    ),
    (
        "stop_loss",
        "use_signal_stop_loss",
        StopLoss(percent=D(1)),
        "{ amount = 2 }",
        StopLoss(amount=D(2)),
    ),
    ("cancel_after", "use_signal_cancel_after", D(60), "30", D(30)),
]


@pytest.mark.parametrize(("key", "switch", "from_signal", "toml", "configured"), SIGNAL_FIELDS)
@pytest.mark.parametrize("where", ["subscription", "strategy"])
def test_the_signal_wins_unless_its_switch_is_off(
    tmp_path, key, switch, from_signal, toml, configured, where
):
    setting = f"{key} = {toml}\n"
    intent = intent_for(tmp_path, subscription=setting, signal=SIGNAL)
    assert (getattr(intent, key), intent.provenance[key].source) == (from_signal, Source.SIGNAL)
    off = f"{switch} = false\n"
    place = (
        {"subscription": setting + off}
        if where == "subscription"
        else {
            "subscription": setting,
            "strategy": off,
        }
    )
    intent = intent_for(tmp_path, signal=SIGNAL, **place)
    found = intent.provenance[key]
    assert (getattr(intent, key), found.source) == (configured, Source.SUBSCRIPTION)
    assert f"{switch} = false" in found.note


def test_the_multiplier_scales_the_signals_quantity_and_says_so(tmp_path):
    intent = intent_for(tmp_path, subscription="quantity_multiplier = 3\n", signal=SIGNAL)
    assert intent.quantity == D(15)
    assert "quantity 15 ← signal (× quantity_multiplier 3)" in intent.explain(
        "trend-paper", "trend"
    )


def test_the_multiplier_never_scales_a_percent_of_position(tmp_path):
    signal = Signal(
        ticker="AAPL",
        action=Action.EXIT,
        quantity=D(50),
        quantity_type=QuantityType.PERCENT_OF_POSITION,
    )
    intent = intent_for(tmp_path, subscription="quantity_multiplier = 3\n", signal=signal)
    assert intent.quantity == D(50)


@pytest.mark.parametrize(
    ("flag", "setting", "expected"),
    [(True, "false", True), (False, "true", False), (None, "false", False)],
)
def test_the_signals_cancel_flag_overrides_cancel_open_orders(tmp_path, flag, setting, expected):
    signal = Signal(ticker="AAPL", action=Action.BUY, cancel=flag)
    intent = intent_for(tmp_path, subscription=f"cancel_open_orders = {setting}\n", signal=signal)
    assert intent.cancel_open_orders is expected
    source = Source.SIGNAL if flag is not None else Source.SUBSCRIPTION
    assert intent.provenance["cancel_open_orders"].source is source


def test_the_signals_breakeven_offset_overrides_the_setting(tmp_path):
    signal = Signal(ticker="AAPL", action=Action.BREAKEVEN, breakeven_offset=D("0.1"))
    intent = intent_for(tmp_path, subscription="breakeven_offset = 2\n", signal=signal)
    assert intent.breakeven_offset == D("0.1")
    assert intent.provenance["breakeven_offset"].source is Source.SIGNAL


@pytest.mark.parametrize(
    ("subscription", "delay", "explained"),
    [
        ("", D(30), "delay 30 ← signal"),
        (
            "use_signal_delay = false\n",
            None,
            "delay none ← subscription trend-paper (signal's value ignored: use_signal_delay"
            " = false)",
        ),
    ],
    ids=["honoured", "switched-off"],
)
def test_the_signals_delay_applies_unless_use_signal_delay_is_off(
    tmp_path, subscription, delay, explained
):
    signal = Signal(ticker="AAPL", action=Action.BUY, delay=D(30))
    intent = intent_for(tmp_path, subscription=subscription, signal=signal)
    assert intent.delay == delay
    assert explained in intent.explain("trend-paper", "trend")


def test_no_delay_asked_none_applies_and_none_is_explained(tmp_path):
    for signal in (SIGNAL, Signal(ticker="AAPL", action=Action.BUY, delay=D(0))):
        intent = intent_for(tmp_path, signal=signal)
        assert intent.delay is None
    assert "delay" not in intent_for(tmp_path, signal=SIGNAL).provenance


def test_explain_names_the_subscription_and_the_switch(tmp_path):
    intent = intent_for(
        tmp_path,
        strategy="quantity = 1\n",
        subscription="use_signal_quantity = false\n",
        signal=SIGNAL,
    )
    lines = intent.explain("fixed-one", "trend")
    assert (
        "quantity 1 ← strategy trend defaults (signal's value ignored: use_signal_quantity"
        " = false)" in lines
    )
