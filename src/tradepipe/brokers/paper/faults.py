"""Faults the paper broker can be told to show (tests and drills): misbehaving as a remote
broker can, one new order or one price move at a time, or every call while it is "down"."""

from __future__ import annotations

from enum import StrEnum

from tradepipe.errors import BrokerUnavailable, OrderRejected


class Fault(StrEnum):
    REJECT = "reject"  # the next new order is refused with the given message
    TIMEOUT = "timeout"  # the next new order is accepted, then the answer is lost
    DROP = "drop"  # the connection drops before the next new order reaches the broker
    LOSE_FILLS = "lose_fills"  # the next price move fills orders but reports none of it
    DOWN = "down"  # every call fails as if the connection dropped, until heal()


class Faults:
    def __init__(self, account: str) -> None:
        self.account = account
        self._queue: list[tuple[Fault, str]] = []
        self._down: str | None = None

    def inject(self, fault: Fault, message: str) -> None:
        if fault is Fault.DOWN:
            self._down = message
        else:
            self._queue.append((fault, message))

    def heal(self) -> None:
        self._down = None

    def link(self) -> None:
        """Every call first: a broker that is down answers nothing."""
        if self._down is not None:
            raise BrokerUnavailable(f"paper broker {self.account}: {self._down}")

    def next_order(self) -> tuple[Fault, str] | None:
        """The fault this new order meets: a REJECT refuses it here, a DROP never lets it
        reach the books; a TIMEOUT is returned, for `lose_answer` once it is booked."""
        if not self._queue:
            return None
        fault, message = self._queue.pop(0)
        if fault is Fault.REJECT:
            raise OrderRejected(message)
        if fault is Fault.DROP:
            raise BrokerUnavailable(f"paper broker {self.account}: {message}")
        return fault, message

    def lose_answer(self, fault: tuple[Fault, str] | None) -> None:
        if fault is not None and fault[0] is Fault.TIMEOUT:
            raise BrokerUnavailable(f"paper broker {self.account}: {fault[1]}")

    def lose_fills(self) -> bool:
        """True once, when the next price move's fills are to go unreported."""
        if self._queue and self._queue[0][0] is Fault.LOSE_FILLS:
            self._queue.pop(0)
            return True
        return False
