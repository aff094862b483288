"""The bracket emulator (SPEC §8): for a broker without native brackets, tradepipe does what an
OTOCO bracket does, driven by the journal alone (`tradepipe.core.brackets` decides each step)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from tradepipe.brokers.base import Broker
from tradepipe.core import brackets
from tradepipe.core.model import OrderRequest, OrderStatus, Side
from tradepipe.engine.current import Current
from tradepipe.engine.lanes import Chore
from tradepipe.engine.recorder import Recorder
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import Journal, OrderRow
from tradepipe.journal.rows import as_read, typed

log = logging.getLogger(__name__)


class BracketEmulator:
    """Places, resizes and cancels the held take-profit / stop-loss legs of emulated brackets;
    settle rounds run in the ticker's lane (`queue_chore`), one at a time per ticker."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        recorder: Recorder,
        *,
        queue_chore: Callable[[Chore], None],
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.recorder = recorder
        self.queue_chore = queue_chore
        self._settle_due: set[tuple[str, str]] = set()
        self._settling: dict[tuple[str, str], asyncio.Lock] = {}  # one settle at a time

    def schedule_settle(self, account: str, ticker: str) -> None:
        """Settle the ticker's emulated brackets in its lane, after the work queued before."""
        if (account, ticker) in self._settle_due:
            return
        self._settle_due.add((account, ticker))
        self.queue_chore(Chore("settle", account, ticker))

    async def settle_chore(self, account: str, ticker: str) -> None:
        """The lane's turn for a scheduled settle: the next change schedules another."""
        self._settle_due.discard((account, ticker))
        await self.settle_brackets(account, ticker)

    async def settle_brackets(self, account: str, ticker: str) -> None:
        """For a broker without native brackets, do what an OTOCO bracket does: place the
        take-profit / stop-loss once their entry has filled (for the quantity filled), drop them
        if it never will, keep each to what the position still holds when the other fills in
        part (resized), and cancel the survivor when one of them fills. Driven by the journal
        alone (tradepipe.core.brackets decides), so it is safe to run again at any time, and at
        start."""
        broker = self.current.brokers[account]
        if broker.capabilities.brackets:
            return
        # At start this runs outside the lanes, while what it journals already schedules
        # settle chores in them: one round at a time, each reading the journal afresh.
        async with self._settling.setdefault((account, ticker), asyncio.Lock()):
            children = self.journal.bracket_children(account, ticker)
            rows = {child["id"]: (self.journal.orders_written, child) for child in children}
            # A lost answer first (a breakeven's move, a resized leg): until it is known, a
            # child may already have been replaced, and must be neither resized nor re-placed.
            # (Only the children's: settle_unknown, before each delivery, has the rest.)
            for child in children:
                if child["status"] == OrderStatus.UNKNOWN:
                    await self.recorder.look_up(broker, child)
            for child in children:
                await self._settle_child(broker, child["id"], rows)

    def _order(self, order_id: int, rows: dict[int, tuple[int, OrderRow]]) -> OrderRow:
        """The order's row: as this round read it while no order was written since, else
        read again (this round may have settled it)."""
        held = rows.get(order_id)
        if held is not None and held[0] == self.journal.orders_written:
            return held[1]
        row = self.journal.order_by_id(order_id)
        assert row is not None
        rows[order_id] = (self.journal.orders_written, row)
        return row

    async def _settle_child(
        self, broker: Broker, child_id: int, rows: dict[int, tuple[int, OrderRow]]
    ) -> None:
        child = self._order(child_id, rows)
        if child["status"] not in brackets.LIVE:
            return
        assert child["parent_id"] is not None  # a bracket child (bracket_children, a resize)
        entry = self._order(child["parent_id"], rows)
        unsent = child["status"] in (OrderStatus.HELD, OrderStatus.SUBMITTING)
        if unsent and entry["status"] in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTING):
            # The entry's answer was lost: its fate decides the children, so ask.
            entry = await self.recorder.look_up(broker, entry)
        if child["status"] == OrderStatus.SUBMITTING:
            # Sent before a stop interrupted us: ask before sending again.
            child = await self.recorder.look_up(broker, child)
        held = self.journal.position(child["account"], child["ticker"])
        position = held[0] if held else Decimal(0)
        closable = position if child["side"] == Side.SELL else -position
        step = brackets.next_step(entry, child, self.journal.siblings(child), closable=closable)
        if isinstance(step, brackets.Drop):
            self.recorder.journal_status(child, OrderStatus.CANCELED, step.why)
        elif isinstance(step, brackets.Cancel):
            await self._cancel_child(broker, child, step.why)
        elif isinstance(step, brackets.Place):
            current = self._order(child["id"], rows) is child  # no order written since
            await self._place_child(broker, child, step.quantity, current=current)
        elif isinstance(step, brackets.Resize):
            await self._resize_child(broker, child, step, rows)

    async def _place_child(
        self, broker: Broker, child: OrderRow, quantity: Decimal, *, current: bool
    ) -> None:
        """`current`: `child` is the journal's row as it is now."""
        request = OrderRequest.from_row(child, quantity=quantity)
        values = {
            "status": OrderStatus.SUBMITTING,
            "quantity": quantity,
            "updated_at": self.clock(),
        }
        self.journal.update_order(
            child["client_order_id"], row=child if current else None, **values
        )
        # A held leg never reached the broker: as updated here, it has no fills.
        new = None
        if current and child["status"] == OrderStatus.HELD:
            new = typed(OrderRow, {**child, **{k: as_read(v) for k, v in values.items()}})
        try:
            await self.recorder.send(broker, request, new=new)
        except OrderRejected as e:
            log.error("%s: %s rejected the %s: %s", child["ticker"], broker.name, child["role"], e)
        except BrokerError as e:
            log.error(
                "%s: the %s's fate at %s is unknown: %s",
                child["ticker"],
                child["role"],
                broker.name,
                e,
            )

    async def _resize_child(
        self,
        broker: Broker,
        child: OrderRow,
        step: brackets.Resize,
        rows: dict[int, tuple[int, OrderRow]],
    ) -> None:
        """Shrink a working child to what its bracket still holds: a new order takes its place
        (journaled first, under an id derived from the child's, so a restart finds it), the
        child is canceled, and only once it has ended is the new one sent, for what is held
        then. Cancel and send again rather than the broker's replace: a restart between the
        two finds each half by its id, on every broker."""
        now = self.clock()
        cid = child["client_order_id"]
        new_id = self.journal.insert_order(
            **{column: child[column] for column in brackets.KEPT_BY_RESIZE},
            client_order_id=step.client_order_id,
            quantity=step.quantity,
            status=OrderStatus.SUBMITTING,
            replaces=cid,
            created_at=now,
            updated_at=now,
        )
        log.info(
            "%s: the %s %s rests for more than the position holds: resized to %s (%s)",
            child["ticker"],
            child["role"],
            cid,
            step.quantity,
            step.client_order_id,
        )
        await self._cancel_child(broker, child, f"resized: {step.client_order_id} takes its place")
        await self._settle_child(broker, new_id, rows)

    async def _cancel_child(self, broker: Broker, child: OrderRow, why: str) -> None:
        # write-ahead: what decided it (a fill, a resize's new order) is on disk
        await self.journal.durable()
        state = await broker.cancel(child["client_order_id"], ticker=child["ticker"])
        if state is None:  # the broker never had it: nothing to cancel
            self.recorder.journal_status(child, OrderStatus.CANCELED, why)
            return
        if state.status is OrderStatus.CANCELED:
            state = replace(state, message=f"{state.message}; {why}" if state.message else why)
        self.recorder.record_state(child["account"], child["ticker"], state)
