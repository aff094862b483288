"""Which instrument a signal trades when it is not its ticker (SPEC §15): the option contract
chosen from the underlying's chain, the dated contract a continuous future (`ES1!`) maps to.

The chains and futures listings a broker answers are kept a short while per account and
underlying (`ttl`, 5 minutes) so that a burst of alerts does not fetch the chain for each; the
paper broker's `paper chain` forgets the account's cached chain at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

from tradepipe.brokers.base import Broker
from tradepipe.core.continuous import ListedFuture, Mapped, Unmapped, front_contract
from tradepipe.core.continuous import exchange_date as exchange_date
from tradepipe.core.continuous import parse_continuous as parse_continuous
from tradepipe.core.decision import Reject
from tradepipe.core.options import OptionContract
from tradepipe.errors import OrderRejected

T = TypeVar("T")


CHAIN_TTL_SECONDS = 300.0


class ContractLists:
    """Chains (per account + underlying) and futures listings (per account + root), cached."""

    def __init__(
        self, ttl: float = CHAIN_TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.monotonic = monotonic
        self._cache: dict[tuple[str, str, str], tuple[float, Any]] = {}

    async def _cached(self, key: tuple[str, str, str], fetch: Callable[[], Awaitable[T]]) -> T:
        now = self.monotonic()
        found = self._cache.get(key)
        if found is not None and now - found[0] < self.ttl:
            value: T = found[1]
            return value
        value = await fetch()
        self._cache[key] = (now, value)
        return value

    async def chain(self, account: str, broker: Broker, underlying: str) -> list[OptionContract]:
        """The underlying's option chain at the broker. Raises OrderRejected if it has none."""
        option_chain = getattr(broker, "option_chain", None)
        if option_chain is None:
            raise OrderRejected(f"broker {broker.name} lists no option chains")
        return await self._cached(("chain", account, underlying), lambda: option_chain(underlying))

    async def futures(self, account: str, broker: Broker, root: str) -> list[ListedFuture]:
        futures_contracts = getattr(broker, "futures_contracts", None)
        if futures_contracts is None:
            raise OrderRejected(f"broker {broker.name} lists no futures contracts")
        return await self._cached(("futures", account, root), lambda: futures_contracts(root))

    def forget(self, account: str, underlying: str | None = None) -> None:
        """Drop the cached chains of an account (of one underlying): a new one was given."""
        for key in list(self._cache):
            if key[1] == account and (underlying is None or key[2] == underlying):
                del self._cache[key]

    async def map_continuous(
        self,
        ticker: str,
        account: str,
        broker: Broker,
        today: date,
        roll_days: int,
    ) -> Mapped | Reject | None:
        """The dated contract a continuous futures ticker trades (None: not one)."""
        continuous = parse_continuous(ticker)
        if continuous is None:
            return None
        if not broker.capabilities.continuous_futures:
            return Reject(
                f'{ticker} is a continuous futures ticker, and account "{account}" (broker'
                f" {broker.name}) cannot map it to a dated contract: send the contract itself,"
                f" e.g. {continuous.root}Z{today.year}; nothing was sent"
            )
        try:
            listed = await self.futures(account, broker, continuous.root)
        except OrderRejected as e:
            return Reject(f"{ticker}: {e}; nothing was sent")
        mapped = front_contract(ticker, continuous.nth, listed, today, roll_days)
        if isinstance(mapped, Unmapped):
            return Reject(f"{mapped.reason}; nothing was sent")
        return mapped
