"""The operator's commands on the engine: flatten, approve or reject a delivery waiting for
approval, preview a journaled signal (a dry run) and replay it. Each step that touches an
account + ticker runs in its lane, after the signals queued there."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from tradepipe.core.ids import operator_order_id
from tradepipe.core.model import (
    DeliveryStatus,
    OrderRequest,
    OrderRole,
    Side,
    SignalStatus,
)
from tradepipe.core.plan import Reject, plan_to_json
from tradepipe.core.resolve import resolve_signal
from tradepipe.core.signal import Signal, parse_signal
from tradepipe.engine.current import Current
from tradepipe.engine.delivery import Delivery
from tradepipe.engine.lanes import Lanes, Work
from tradepipe.engine.planner import Planner
from tradepipe.engine.recorder import Recorder
from tradepipe.errors import BrokerError, UsageError
from tradepipe.journal import DeliveryRow, Journal

REPLAY_SOURCE = "replay of signal"  # the journaled source of a `tradepipe replay --execute`


class Commands:
    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        lanes: Lanes,
        delivery: Delivery,
        planner: Planner,
        recorder: Recorder,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.lanes = lanes
        self.delivery = delivery
        self.planner = planner
        self.recorder = recorder

    # -- manual approval -----------------------------------------------------------------------

    async def review(self, delivery_id: int, *, approve: bool) -> dict[str, Any]:
        """An operator's answer to a delivery that waits for approval (`auto_submit = false`).

        Approval plans again against the position at that moment, in the delivery's own lane
        (so it cannot race newer signals), and reports how the plan changed since the signal.
        """
        delivery = self._pending(delivery_id)
        self.journal.record_operator_action(
            "approve" if approve else "reject", f"delivery {delivery_id}", self.clock()
        )
        if not approve:
            outcome = self.delivery.set_delivery(
                delivery, DeliveryStatus.REJECTED, "rejected by the operator", notify=False
            )
            return {"delivery_id": delivery_id, "status": outcome.status, "reason": outcome.reason}
        row = self.journal.signal(delivery["signal_id"])
        assert row is not None
        signal = parse_signal(row["payload"]).signal
        assert signal is not None
        # At the mark of this moment: the signal's price moved the mark when it came in.
        work = Work(row["id"], row["strategy"], signal, moves_mark=False)
        work = self.lanes.for_account(work, delivery["account"])
        return await self.lanes.in_lane(
            delivery["account"], delivery["ticker"], partial(self._approve, work, delivery_id)
        )

    def _pending(self, delivery_id: int) -> DeliveryRow:
        delivery = self.journal.delivery(delivery_id)
        if delivery is None:
            raise UsageError(f"no delivery {delivery_id} in the journal")
        if delivery["status"] != DeliveryStatus.PENDING_APPROVAL:
            raise UsageError(
                f"delivery {delivery_id} is {delivery['status']}, not waiting for approval"
            )
        return delivery

    async def _approve(self, work: Work, delivery_id: int) -> dict[str, Any]:
        delivery = self._pending(delivery_id)  # again: another approval may have won
        before = json.loads(delivery["plan"]).get("summary") if delivery["plan"] else None
        outcome = await self.delivery.deliver(work, {**delivery, "status": DeliveryStatus.APPROVED})
        after = self.journal.delivery(delivery_id)
        assert after is not None
        now = json.loads(after["plan"]) if after["plan"] else {}
        now_summary = now.get("summary") or now.get("reason")
        return {
            "delivery_id": delivery_id,
            "status": outcome.status,
            "reason": outcome.reason,
            "plan_at_signal": before,
            "plan_now": now_summary,
            "changed": before != now_summary,
        }

    # -- preview and replay --------------------------------------------------------------------

    async def preview(self, signal_id: int) -> list[dict[str, Any]]:
        """What the signal would do now, per enabled subscription: a dry run that journals
        nothing and moves no mark (`tradepipe replay ID`)."""
        row = self.journal.signal(signal_id)
        if row is None or not row["payload"]:
            raise UsageError(f"no accepted signal {signal_id} in the journal")
        signal = _journaled_signal(signal_id, row["payload"])
        config = self.current.config
        strategy = config.strategies[row["strategy"]]
        answers = []
        for name, subscription in config.subscriptions_for(row["strategy"]):
            ticker = self.current.canonical(subscription.account, signal.ticker)
            intent = resolve_signal(replace(signal, ticker=ticker), subscription, strategy.defaults)
            try:
                decision = await self.planner.decide(
                    intent, subscription.account, subscription=name, strategy=row["strategy"]
                )
            except BrokerError as e:
                decision = Reject(f"broker {subscription.account}: {e}")
            answers.append(
                {"subscription": name, "account": subscription.account, **plan_to_json(decision)}
            )
        return answers

    def replay(self, signal_id: int) -> int:
        """Send a journaled signal again, as a new signal (fresh client order ids) that goes
        through planning, approval and the audit trail like any other. Returns its id."""
        row = self.journal.signal(signal_id)
        if row is None or not row["payload"]:
            raise UsageError(f"no accepted signal {signal_id} in the journal")
        signal = _journaled_signal(signal_id, row["payload"])
        now = self.clock()
        self.journal.record_operator_action("replay", f"signal {signal_id}", now)
        new_id = self.journal.record_signal(
            strategy=row["strategy"],
            received_at=now,
            source=f"{REPLAY_SOURCE} {signal_id}",
            body=row["body"],
            payload=row["payload"],
            ticker=row["ticker"],
            action=row["action"],
            status=SignalStatus.ACCEPTED,
            http_status=200,
        )
        self.lanes.enqueue(new_id, row["strategy"], signal, moves_mark=False)
        return new_id

    # -- flatten -------------------------------------------------------------------------------

    async def flatten(
        self, account: str | None = None, ticker: str | None = None, *, why: str | None = None
    ) -> list[dict[str, Any]]:
        """Cancel the open orders, then close the position, of every account + ticker in the
        scope; each in its lane, after the work queued there. Answers what was done. `why`:
        journaled with the action when it is not the operator's own (a risk limit's trip)."""
        brokers = self.current.brokers
        if account is not None and account not in brokers:
            raise UsageError(f'no account "{account}" (accounts: {", ".join(brokers)})')
        action = self.journal.record_operator_action(
            "flatten",
            f"{account or 'every account'} {ticker or 'every ticker'}",
            self.clock(),
            why=why,
        )
        results = []
        for name in [account] if account else list(brokers):
            wanted = None if ticker is None else self.current.canonical(name, ticker)
            keep = partial(_wanted, wanted)
            results += await self._flatten_account(name, action, keep)
        return results

    async def flatten_subscription(
        self, subscription: str, account: str, why: str
    ) -> list[dict[str, Any]]:
        """A subscription's `flatten_at` (SPEC §13): the operator's flatten, for the tickers of
        the subscription's account that it traded and that hold a position or open orders
        now. The position is the account's (SPEC §6): another subscription trading the same
        account + ticker is closed with it."""
        if account not in self.current.brokers:
            raise UsageError(f'no account "{account}" for subscription {subscription}')
        canonical = self.current.canonical
        traded = {
            canonical(account, t) for t in self.journal.subscription_tickers(account, subscription)
        }
        action = self.journal.record_operator_action(
            "flatten_at", f"subscription {subscription}", self.clock(), account=account, why=why
        )
        return await self._flatten_account(account, action, traded.__contains__)

    async def _flatten_account(
        self, name: str, action: int, keep: Callable[[str], bool]
    ) -> list[dict[str, Any]]:
        """Flatten each ticker of the account that holds something and that `keep` wants."""
        broker = self.current.brokers[name]
        canonical = self.current.canonical
        tickers = {p.ticker for p in await broker.positions() if p.quantity}
        tickers |= {o.ticker for o in await broker.open_orders() if o.ticker}
        tickers |= {c["ticker"] for c in self.journal.bracket_children(name)}
        # One instrument, one close: a journal row under an older spelling is the same one
        # (two closes, each for the whole position, would sell it twice).
        tickers = {canonical(name, t) for t in tickers}
        results = []
        for symbol in sorted(t for t in tickers if keep(t)):

            async def close(name: str = name, symbol: str = symbol) -> dict[str, Any]:
                return await self._flatten_one(name, symbol, action)

            results.append(await self.lanes.in_lane(name, symbol, close))
        return results

    async def _flatten_one(self, account: str, ticker: str, action: int) -> dict[str, Any]:
        broker = self.current.brokers[account]
        canceled, left = await self.delivery.sending.cancel_ticker(
            account, ticker, "canceled by flatten", leave_ours=True
        )
        result: dict[str, Any] = {"account": account, "ticker": ticker, "canceled": canceled}
        result["left_working"] = left
        held = (await broker.position(ticker)).quantity
        if held == 0:
            return result | {"closed": None}
        request = OrderRequest(
            client_order_id=operator_order_id(self.journal.instance, action, account, ticker),
            account=account,
            ticker=ticker,
            side=Side.SELL if held > 0 else Side.BUY,
            quantity=abs(held),
            role=OrderRole.EXIT,
        )
        self.recorder.journal_order(request)
        state = await self.recorder.send(broker, request)
        closed = {
            "client_order_id": request.client_order_id,
            "side": str(request.side),
            "quantity": str(request.quantity),
            "status": str(state.status),
            "message": state.message,
        }
        return result | {"closed": closed}


def _wanted(wanted: str | None, ticker: str) -> bool:
    return wanted in (None, ticker)


def _journaled_signal(signal_id: int, payload: str) -> Signal:
    """A journaled signal, read again under today's rules: one accepted before a rule was
    tightened (a ticker outside SPEC §12's alphabet) is refused, never replayed as it was."""
    parsed = parse_signal(payload)
    if parsed.signal is None:
        problems = "; ".join(f"{e.field}: {e.message}" for e in parsed.errors)
        raise UsageError(f"signal {signal_id} cannot be replayed: {problems}")
    return parsed.signal
