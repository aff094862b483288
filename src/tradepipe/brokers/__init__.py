"""Broker adapters: one small async protocol, one file per broker.

`make_broker` imports an adapter's SDK only when an account uses it, so `tradepipe --help` and a
paper-only daemon never pay for alpaca-py (pandas), ib-async or ccxt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from tradepipe.config import credentials

if TYPE_CHECKING:
    from tradepipe.brokers.base import Broker
    from tradepipe.config import Account
    from tradepipe.journal import Journal

log = logging.getLogger(__name__)

# Brokers whose accounts need credentials (Interactive Brokers logs in inside TWS / Gateway).
NEEDS_CREDENTIALS = frozenset({"alpaca", "ccxt"})


def make_broker(
    name: str,
    account: Account,
    journal: Journal,
    clock: Callable[[], datetime],
    environ: Mapping[str, str] | None = None,
    *,
    secrets: credentials.Credentials | None = None,
) -> Broker:
    """The adapter for one configured account, with `secrets` if the caller already looked
    them up (`credentials.require`). A missing credential raises `ConfigError` naming the
    account."""
    if account.broker == "paper":
        from decimal import Decimal

        from tradepipe.brokers.paper.broker import PaperBroker

        return PaperBroker(
            name,
            journal,
            cash=Decimal(account.cash),
            clock=clock,
            native_brackets=account.native_brackets,
            instruments=account.contract_specs(),
            roll_days=account.roll_days_before_expiry,
        )
    if secrets is None and account.broker in NEEDS_CREDENTIALS:
        secrets = credentials.require(name, environ)
    if secrets is not None:  # where they came from, never what they are
        log.info("account %s: broker credentials from %s", name, secrets.source)
    if account.broker == "alpaca":
        from tradepipe.brokers.alpaca.broker import AlpacaBroker

        return AlpacaBroker.from_config(name, account, secrets, clock)
    if account.broker == "ibkr":
        from tradepipe.brokers.ibkr.broker import IbkrBroker

        return IbkrBroker.from_config(name, account, secrets, clock)
    from tradepipe.brokers.ccxt.broker import CcxtBroker

    return CcxtBroker.from_config(name, account, secrets, clock)
