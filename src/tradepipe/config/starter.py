"""The starter configuration `tradepipe serve` writes when there is none, and fresh tokens."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import (
    ValidationError,
)

from tradepipe.config.model import StrategyConfig
from tradepipe.errors import ConfigError


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
