"""The configuration file: one pydantic model per TOML table, `TRADEPIPE_…` environment overrides.

`load_config` reads the TOML file, lets environment variables override keys, validates, and
raises a single `ConfigError` naming the file and every problem with its key path, value and limit.
`Config` is the loaded configuration's type. The parts: model.py (the root and its tables),
accounts.py (the account tables), fields.py (validated names, URLs, networks, ports),
settings.py (the SPEC §5 setting tables), load.py (finding and loading), messages.py (what a
problem says), starter.py (the starter file); credentials.py (broker keys) stands apart.
"""

from __future__ import annotations

from tradepipe.config.accounts import (
    Account,
    AlpacaAccount,
    CcxtAccount,
    IbkrAccount,
    InstrumentOverride,
    PaperAccount,
)
from tradepipe.config.fields import Name, Network, Port, Url, WsUrl
from tradepipe.config.load import find_config_path, load_config
from tradepipe.config.messages import BROKERS, SECRET_KEYS
from tradepipe.config.model import (
    MIN_TOKEN_LENGTH,
    Config,
    JournalConfig,
    ReconciliationConfig,
    ServerConfig,
    StrategyConfig,
    SubscriptionConfig,
)
from tradepipe.config.notify import NotifyTarget
from tradepipe.config.settings import (
    Positive,
    Settings,
    StopLossSetting,
    TakeProfitSetting,
    TradingWindow,
)
from tradepipe.config.starter import new_token, write_starter_config

__all__ = [
    "BROKERS",
    "MIN_TOKEN_LENGTH",
    "SECRET_KEYS",
    "Account",
    "AlpacaAccount",
    "CcxtAccount",
    "Config",
    "IbkrAccount",
    "InstrumentOverride",
    "JournalConfig",
    "Name",
    "Network",
    "NotifyTarget",
    "PaperAccount",
    "Port",
    "Positive",
    "ReconciliationConfig",
    "ServerConfig",
    "Settings",
    "StopLossSetting",
    "StrategyConfig",
    "SubscriptionConfig",
    "TakeProfitSetting",
    "TradingWindow",
    "Url",
    "WsUrl",
    "find_config_path",
    "load_config",
    "new_token",
    "write_starter_config",
]
