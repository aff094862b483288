"""The operator's verbs over the engine: approve, reject, flatten, replay, paper quote, status,
halt, resume and risk.

One typed API: the daemon's local API (`daemon/local_api.py`) and the CLI's standalone runs call
it alike, and the CLI's daemon client (`daemon/client.py`) mirrors it verb for verb. Each verb
answers a JSON-ready dict: the very answer the local API sends (less its `"ok": true`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.chains import parse_chain_file
from tradepipe.core.model import OrderState, OrderStatus
from tradepipe.core.signal import ticker_problems
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.engine import Engine, halting
from tradepipe.errors import UsageError
from tradepipe.journal.equity import AFTER_MARK

if TYPE_CHECKING:
    from tradepipe.config import Config


class OperatorApi(Protocol):
    """What the CLI can ask of the engine, in-process (`Operator`) or through the daemon."""

    async def review(self, delivery_id: int, approve: bool) -> dict[str, Any]: ...

    async def flatten(self, account: str | None, ticker: str | None) -> dict[str, Any]: ...

    async def replay(self, signal_id: int, execute: bool) -> dict[str, Any]: ...

    async def paper_quote(self, account: str, ticker: str, price: Decimal) -> dict[str, Any]: ...

    async def paper_chain(self, account: str, underlying: str, text: str) -> dict[str, Any]: ...

    async def status(self) -> dict[str, Any]: ...

    async def halt(self, scope: Scope, state: TradingState, reason: str) -> dict[str, Any]: ...

    async def resume(self, scope: Scope) -> dict[str, Any]: ...
    async def notify_test(self) -> dict[str, Any]: ...
    async def risk(self) -> dict[str, Any]: ...


def check_ticker(ticker: str) -> None:
    """A ticker typed on the command line obeys the webhook's rule (SPEC §12)."""
    problems = ticker_problems(ticker) if ticker.strip() else ["must not be empty"]
    if problems:
        shown = json.dumps(ticker if len(ticker) <= 60 else ticker[:57] + "...")
        raise UsageError(f"ticker {shown} {'; '.join(problems)}")


# What a mark move did to an order, each order once: a one-cancels-other sibling is canceled,
# not filled.
_MOVED = {
    "filled": {OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED},
    "canceled": {OrderStatus.CANCELED, OrderStatus.EXPIRED},
    "rejected": {OrderStatus.REJECTED},
}


class Operator:
    """What the CLI's acting commands do, whether through the daemon or on their own."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config  # the daemon's reload swaps it
        self.engine = engine

    async def review(self, delivery_id: int, approve: bool) -> dict[str, Any]:
        """Approve (plan again against the position now, then send) or reject a delivery."""
        return await self.engine.review(delivery_id, approve=approve)

    async def approve(self, delivery_id: int) -> dict[str, Any]:
        return await self.review(delivery_id, True)

    async def reject(self, delivery_id: int) -> dict[str, Any]:
        return await self.review(delivery_id, False)

    async def flatten(self, account: str | None, ticker: str | None) -> dict[str, Any]:
        """Cancel the open orders, then close the positions, of an account and ticker (None:
        every one)."""
        if ticker is not None:
            check_ticker(ticker)
        return {"flattened": await self.engine.flatten(account, ticker)}

    async def replay(self, signal_id: int, execute: bool) -> dict[str, Any]:
        """What a journaled signal would do now (a dry run), or send it again as a new signal."""
        if not execute:
            return {"signal_id": signal_id, "plans": await self.engine.preview(signal_id)}
        return {"replay_of": signal_id, "signal_id": self.engine.replay(signal_id)}

    async def status(self) -> dict[str, Any]:
        """The engine's live report: brokers, blocks, work pending."""
        return self.engine.health()

    async def halt(self, scope: Scope, state: TradingState, reason: str) -> dict[str, Any]:
        """Set a scope's trading state (halted or reduce_only) until `resume` (SPEC §13): the
        next delivery it covers is gated at once (the engine's in-memory states)."""
        return halting.halt(self.config, self.engine.states, scope, state, reason)

    async def resume(self, scope: Scope) -> dict[str, Any]:
        """End a scope's trading state; answers whether it had one, and what stays in force."""
        return halting.resume(self.config, self.engine.states, scope)

    async def notify_test(self) -> dict[str, Any]:
        """Send a test message to every `[[notify]]` target now; each one's outcome."""
        results = await self.engine.notifier.test(self.config)
        return {"targets": [asdict(r) for r in results]}

    async def risk(self) -> dict[str, Any]:
        """Each scope's trading state, the risk limits and their current use (SPEC §13)."""
        return self.engine.risk_report()

    def _paper(self, account: str) -> PaperBroker:
        broker = self.engine.brokers.get(account)
        if broker is None or not isinstance(broker, PaperBroker):
            paper = [n for n, a in self.config.accounts.items() if a.broker == "paper"]
            raise UsageError(
                f'"{account}" is not a paper account (paper accounts: {", ".join(paper) or "none"})'
            )
        return broker

    async def paper_chain(self, account: str, underlying: str, text: str) -> dict[str, Any]:
        """Give a paper account the option chain of an underlying (CSV or JSON of expiration,
        right, strike), in place of the generated one (SPEC §15)."""
        broker = self._paper(account)
        check_ticker(underlying)
        contracts = parse_chain_file(text)
        if isinstance(contracts, str):
            raise UsageError(f"paper chain {account} {underlying}: {contracts}")
        underlying = broker.give_chain(underlying, contracts)
        self.engine.planner.contracts.forget(account, underlying)  # the next signal sees it
        self.engine.journal.record_operator_action(
            "paper chain", f"{account} {underlying}", self.engine.clock(), contracts=len(contracts)
        )
        expirations = sorted({e for e, _, _ in contracts})
        return {
            "account": account,
            "underlying": underlying,
            "contracts": len(contracts),
            "expirations": [e.isoformat() for e in expirations],
            "strikes": [str(k) for k in sorted({k for _, _, k in contracts})],
        }

    async def paper_quote(self, account: str, ticker: str, price: Decimal) -> dict[str, Any]:
        """Move a paper account's mark; resting orders it crosses fill."""
        broker = self._paper(account)
        check_ticker(ticker)
        ticker = broker.canonical_ticker(ticker)  # its fills are journaled under the instrument's
        problem = broker.mark_problem(ticker, price)
        if problem:
            raise UsageError(f"paper quote {account} {ticker}: price {price} {problem}")
        self.engine.journal.record_operator_action(
            "paper quote", f"{account} {ticker}", self.engine.clock(), price=price
        )

        async def move_mark() -> list[OrderState]:
            changed = await broker.observe_price(ticker, price)
            for state in changed:
                self.engine.record_state(account, ticker, state)
            return changed

        # In the lane: a fill must not land between a delivery's planning and its orders.
        changed = await self.engine.in_lane(account, ticker, move_mark)
        # The mark moved the account's equity: snapshot it (the risk limits may trip on it).
        self.engine.equity.due(account, AFTER_MARK)
        return {
            "account": account,
            "ticker": ticker,
            "price": str(price),
            **{
                what: [s.client_order_id for s in changed if s.status in statuses]
                for what, statuses in _MOVED.items()
            },
        }
