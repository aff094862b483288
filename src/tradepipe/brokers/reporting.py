"""Telling the engine's listener about an order's changes once per change: streams and pollers
repeat themselves (TWS resends statuses, a poll sees the same order again)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from tradepipe.brokers.base import OrderListener
from tradepipe.core.model import OrderState

log = logging.getLogger(__name__)


def logged(listener: OrderListener, who: str) -> OrderListener:
    """`listener`, its failures logged instead of raised (into a stream that must go on)."""

    def guarded(state: OrderState) -> None:
        try:
            listener(state)
        except Exception:
            log.exception("%s: the listener failed", who)

    return guarded


class Reporter:
    """What the listener heard last per client order id (as `key(state)`: the whole state, or
    the part whose change counts), and the listener itself once the engine registers it."""

    def __init__(
        self, key: Callable[[OrderState], Hashable], *, remember_unheard: bool = True
    ) -> None:
        self._key = key
        # False: a change nobody listened to is not remembered (it is reported once a
        # listener is there).
        self._remember_unheard = remember_unheard
        self.listener: OrderListener | None = None
        self.heard: dict[str, Hashable] = {}

    def listen(self, listener: OrderListener) -> None:
        self.listener = listener

    def report(self, state: OrderState, *, always: bool = False) -> None:
        """Tell the listener if `state` changed since it last heard of the order (or `always`)."""
        seen = self._key(state)
        changed = self.heard.get(state.client_order_id) != seen
        if self.listener is None and not self._remember_unheard:
            return
        self.heard[state.client_order_id] = seen
        if self.listener is not None and (always or changed):
            self.listener(state)
