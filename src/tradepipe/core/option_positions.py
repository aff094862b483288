"""Position logic for options, per underlying (SPEC §15): what a signal with option fields does
with the contracts held for its underlying.

Options are bought to open and sold to close, never sold short: a bullish entry buys a call, a
bearish one buys a put (no "Invert puts": a `sell` with `optionType put` closes the put).

| action | `both` | `call` | `put` |
|---|---|---|---|
| buy | close held puts, then buy a call | buy a call | buy a put |
| sell | close held calls, then buy a put | close held calls | close held puts |
| exit | close every held contract | close held calls | close held puts |
| reverse | held calls: close, buy a put; held puts: close, buy a call | reject | reject |
| add | buy more of the right held | buy a call (a call held) | buy a put (a put held) |

An entry of a right already held is an add: skipped unless `allow_add`. A close with nothing
to close is a `Skip` (sell: "never sold short") or a `Reject` (exit, as SPEC §6). Sentiment
`flat` on buy/sell keeps the closes and drops the entry. `cancel` and `breakeven` are refused.

Pure: the held contracts arrive as an argument (the broker's positions, parsed with
`parse_occ`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tradepipe.core.decision import Reject, Skip
from tradepipe.core.options import OptionRight
from tradepipe.core.signal import Action, Sentiment
from tradepipe.core.tickers import default_canonical_ticker


@dataclass(frozen=True, slots=True)
class Held:
    """A contract held for the underlying: long when quantity > 0."""

    symbol: str
    right: OptionRight
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class OptionMoves:
    closes: tuple[Held, ...]  # sold to close first, in this order
    open_right: OptionRight | None  # then a contract of this right is bought (None: no entry)
    why: str


@dataclass(frozen=True, slots=True)
class Occ:
    underlying: str
    expiration: date
    right: OptionRight
    strike: Decimal


_OCC = re.compile(r"^(?P<root>[A-Z]{1,6}) ?(?P<date>[0-9]{6})(?P<right>[CP])(?P<strike>[0-9]{8})$")


def parse_occ(symbol: str) -> Occ | None:
    """An OCC symbol's parts (`AAPL261218C00200000`, with or without the padding space)."""
    match = _OCC.match(default_canonical_ticker(symbol))
    if match is None:
        return None
    text = match["date"]
    try:
        expiration = date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        return None
    right = OptionRight.CALL if match["right"] == "C" else OptionRight.PUT
    return Occ(match["root"], expiration, right, Decimal(match["strike"]) / 1000)


def option_moves(
    action: Action,
    option_type: str,
    held: tuple[Held, ...],
    *,
    allow_add: bool,
    sentiment: Sentiment | None = None,
    underlying: str = "the underlying",
) -> OptionMoves | Skip | Reject:
    """What to close and what to open, or why nothing (the table in the module's doc)."""
    shorts = [h for h in held if h.quantity < 0]
    if shorts:
        return Reject(
            f"{shorts[0].symbol} is held short ({shorts[0].quantity}): tradepipe trades options"
            " long only and will not guess how to handle it; close it at the broker"
        )
    calls = tuple(h for h in held if h.right is OptionRight.CALL and h.quantity > 0)
    puts = tuple(h for h in held if h.right is OptionRight.PUT and h.quantity > 0)
    of = {OptionRight.CALL: calls, OptionRight.PUT: puts}
    match action:
        case Action.BUY | Action.SELL:
            bullish = action is Action.BUY
            if option_type == "both":
                right = OptionRight.CALL if bullish else OptionRight.PUT
                closes = of[right.other]
                return _entry(
                    closes, right, of[right], allow_add, sentiment, action, underlying, "both"
                )
            right = OptionRight(option_type)
            if bullish:  # buy a call / buy a put: an entry of the right asked for
                return _entry((), right, of[right], allow_add, sentiment, action, underlying, "")
            if not of[right]:
                return Skip(
                    f"sell with optionType {option_type}: no {right} of {underlying} is held"
                    " to sell, and options are never sold short"
                )
            return OptionMoves(of[right], None, f"sell closes the {right} held")
        case Action.EXIT:
            closes = calls + puts if option_type == "both" else of[OptionRight(option_type)]
            if not closes:
                what = "option" if option_type == "both" else option_type
                return Reject(f"no open {what} position of {underlying} to exit")
            return OptionMoves(closes, None, "exit closes the contracts held")
        case Action.REVERSE:
            if option_type != "both":
                return Reject(
                    f"reverse with optionType {option_type}: a reversal goes from calls to"
                    " puts or back; send optionType both"
                )
            if calls and puts:
                return Reject(
                    f"reverse: both calls and puts of {underlying} are held; which way is the"
                    " reversal? exit first"
                )
            if not calls and not puts:
                return Reject(f"no open option position of {underlying} to reverse")
            held_right = OptionRight.CALL if calls else OptionRight.PUT
            return OptionMoves(
                of[held_right],
                held_right.other,
                f"reverse: close the {held_right}, buy a {held_right.other}",
            )
        case Action.ADD:
            if option_type == "both":
                rights = [r for r in (OptionRight.CALL, OptionRight.PUT) if of[r]]
                if len(rights) != 1:
                    return Reject(
                        f"add with optionType both: {'both rights' if rights else 'nothing'}"
                        f" of {underlying} held; add to which?"
                    )
                right = rights[0]
            else:
                right = OptionRight(option_type)
            if not of[right]:
                return Reject(f"no open {right} position of {underlying} to add to")
            return OptionMoves((), right, f"add buys another {right}")
    return Reject(
        f"action {action} with option fields is not supported (options trade buy, sell, exit,"
        " reverse and add)"
    )


def _entry(
    closes: tuple[Held, ...],
    right: OptionRight,
    same: tuple[Held, ...],
    allow_add: bool,
    sentiment: Sentiment | None,
    action: Action,
    underlying: str,
    both: str,
) -> OptionMoves | Skip | Reject:
    direction = "bullish" if right is OptionRight.CALL else "bearish"
    if sentiment is Sentiment.FLAT:
        if not closes:
            return Reject(
                f"{action} with sentiment flat: no {right.other} of {underlying} held to exit"
            )
        return OptionMoves(closes, None, f"{action} with sentiment flat: close the {right.other}")
    if same and not allow_add:
        held = ", ".join(f"{h.quantity} {h.symbol}" for h in same)
        if closes:
            return OptionMoves(
                closes, None, f"close the {right.other}; already long {held} (allow_add = false)"
            )
        return Skip(f"already long {held} (allow_add = false)")
    first = f"close the {right.other}, then " if closes else ""
    entry = f"{action} with optionType both: {direction} entry, " if both else ""
    return OptionMoves(closes, right, f"{entry}{first}buy a {right}")
