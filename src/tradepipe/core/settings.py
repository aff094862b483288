"""The SPEC §5 setting keys, defined once: each name with its built-in default.

Config's `Settings` table declares a type for each of `SETTING_NAMES`, in this order (it checks
so when imported); resolution looks each up through subscription → strategy defaults → here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.signal import QuantityType

# SPEC §5, the built-in default of every setting key.
BUILTIN: dict[str, Any] = {
    "quantity": Decimal(1),
    "quantity_type": QuantityType.FIXED_QUANTITY,
    "use_signal_quantity": True,
    "quantity_multiplier": Decimal(1),
    "subtract_exit_quantity": False,
    "fractional": False,
    "entry_order_type": OrderType.MARKET,
    "exit_order_type": OrderType.MARKET,
    "use_signal_order_type": True,
    "time_in_force": TimeInForce.DAY,
    "use_signal_time_in_force": True,
    "take_profit": None,
    "stop_loss": None,
    "use_signal_take_profit": True,
    "use_signal_stop_loss": True,
    "sides": "both",
    "allow_side_swap": True,
    "allow_add": False,
    "ignore_exits": False,
    "cancel_open_orders": True,
    "exit_fill_timeout": Decimal(120),
    "breakeven_offset": Decimal(0),
    "trading_windows": None,
    "allow_exits_outside_windows": True,
    "auto_submit": True,
    "max_position_quantity": None,
    "max_position_value": None,
    # SPEC §13, the subscription's own limits and timing: None is "no such limit".
    "max_trades_per_day": None,
    "max_consecutive_losses": None,
    "loss_cooldown": None,  # seconds
    "flatten_at": None,
    "cancel_after": None,  # seconds
    "use_signal_cancel_after": True,
    "use_signal_delay": True,
}

SETTING_NAMES: tuple[str, ...] = tuple(BUILTIN)
