"""`tradepipe config check`: connect to every account and say what it is and what it can do.

The shell between the config and the adapters: nothing here is kept, and nothing is sent but
the read-only calls a broker needs to report its equity, buying power and capabilities.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.base import Broker, Capabilities, stream_health
from tradepipe.config import credentials
from tradepipe.errors import BrokerError, BrokerUnavailable, ConfigError
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Account, Config


def capabilities_json(capabilities: Capabilities) -> dict[str, Any]:
    """Capabilities as plain JSON values: sets sorted, decimals as numbers."""
    values: dict[str, Any] = {}
    for field in fields(capabilities):
        value = getattr(capabilities, field.name)
        if isinstance(value, frozenset):
            value = sorted(str(v) for v in value)
        elif isinstance(value, Decimal):
            value = float(value)
        values[field.name] = value
    return values


def _now() -> datetime:
    return datetime.now(UTC)


async def _check_one(
    name: str, account: Account, journal: Journal, timeout: float
) -> dict[str, Any]:
    from tradepipe.brokers import NEEDS_CREDENTIALS, make_broker

    report: dict[str, Any] = {"account": name, "broker": account.broker, "ok": False}
    try:
        found = credentials.require(name) if account.broker in NEEDS_CREDENTIALS else None
        if found is not None:  # which place supplied them (never the values)
            report["credentials"] = found.source
        broker: Broker = make_broker(name, account, journal, _now, secrets=found)
    except ConfigError as e:  # a missing credential: the message names the account
        report["error"] = str(e)
        report["config_error"] = True
        return report
    report["capabilities"] = capabilities_json(broker.capabilities)
    try:
        async with asyncio.timeout(timeout):
            await broker.connect()
            summary = await broker.account()
            stream = stream_health(broker)
            if stream is not None and not stream.up:  # the daemon would run degraded
                raise BrokerUnavailable(
                    f"account {name}: the order stream is not listening ({stream.reason}); the"
                    " daemon would poll orders over REST meanwhile"
                )
    except (BrokerError, TimeoutError) as e:
        report["error"] = str(e) or f"no answer within {timeout:g} s"
    else:
        report.update(
            ok=True,
            equity=float(summary.equity),
            cash=float(summary.cash),
            buying_power=float(summary.buying_power),
        )
    finally:
        with contextlib.suppress(BrokerError):
            await broker.close()
    return report


async def check_accounts(config: Config) -> list[dict[str, Any]]:
    """One report per account, connected one after the other (a broker's own timeout applies,
    and an overall one of twice it so that a silent broker cannot hang the check)."""
    path = Path(config.journal.path)
    # The paper broker keeps its books in the journal; before the first serve there is none.
    journal = Journal.open(path, create=False) if path.exists() else Journal.open(Path(":memory:"))
    try:
        reports = []
        for name, account in config.accounts.items():
            timeout = 2 * float(getattr(account, "timeout", 10))
            reports.append(await _check_one(name, account, journal, timeout))
        return reports
    finally:
        journal.close()
