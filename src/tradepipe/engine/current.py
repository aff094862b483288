"""The config and the brokers of now: a reload swaps both in one step (`Reload.use_config`,
reload.py), and every engine component reads them here rather than keeping a copy of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tradepipe.brokers.base import Broker, canonical_ticker

if TYPE_CHECKING:
    from tradepipe.config import Config


@dataclass(slots=True)
class Current:
    config: Config
    brokers: Mapping[str, Broker]

    def canonical(self, account: str, ticker: str) -> str:
        """The instrument as the account's broker spells it (as written if the account is gone)."""
        broker = self.brokers.get(account)
        return ticker if broker is None else canonical_ticker(broker, ticker)
