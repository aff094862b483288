"""What one unit of a ticker is worth on paper (SPEC §12): a future of a root the paper broker
knows (or the account's `instruments` table configures) is worth its point value per point, an
OCC option 100, anything else 1; and the tick a mark must sit on."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from tradepipe.brokers.base import InstrumentRules
from tradepipe.brokers.paper.books import mark_problem
from tradepipe.core.instruments import (
    US_OPTION_MULTIPLIER,
    ContractSpec,
    InstrumentKind,
    contract_spec,
    is_us_option,
    parse_future,
)
from tradepipe.core.prices import stock_tick


class PaperInstruments:
    def __init__(self, account: str, instruments: Mapping[str, ContractSpec]) -> None:
        self.account = account
        self.instruments = dict(instruments)  # futures root → the account's override
        # ticker → its rules: fixed by the ticker and the table above, and asked for every
        # position at every order (buying power values them all)
        self._rules: dict[str, InstrumentRules | str] = {}

    def rules(self, ticker: str) -> InstrumentRules | str:
        """What one unit of the ticker is worth, or why the paper broker cannot know."""
        rules = self._rules.get(ticker)
        if rules is None:
            rules = self._rules[ticker] = self._rules_of(ticker)
        return rules

    def _rules_of(self, ticker: str) -> InstrumentRules | str:
        future = parse_future(ticker)
        if future is not None and future.month is None:
            return (
                f"paper broker: {ticker} is a continuous futures ticker, not a contract: the"
                " engine maps it to the dated contract it trades (SPEC §15)"
            )
        if future is not None:
            spec = contract_spec(future.root, self.instruments)
            if spec is None:
                return (
                    f"paper broker: {ticker} is a future of {future.root}, whose multiplier the"
                    " paper broker does not know: give multiplier and tick_size in the config"
                    f" table accounts.{self.account}.instruments.{future.root}"
                )
            return InstrumentRules(
                tick_size=spec.tick_size,
                lot_size=spec.lot_size,
                kind=InstrumentKind.FUTURE,
                multiplier=spec.multiplier,
            )
        if is_us_option(ticker):
            return InstrumentRules(kind=InstrumentKind.OPTION, multiplier=US_OPTION_MULTIPLIER)
        return InstrumentRules()

    def multiplier(self, ticker: str) -> Decimal:
        """Cash, equity and P&L per point of one unit. A future whose value is unknown never
        gets an order in; books written before multipliers count it as 1."""
        rules = self.rules(ticker)
        return Decimal(1) if isinstance(rules, str) else rules.multiplier

    def tick(self, ticker: str) -> Decimal | None:
        """The instrument's own tick, if it has one (None: the stock rule of SPEC §7)."""
        rules = self.rules(ticker)
        return None if isinstance(rules, str) else rules.tick_size

    def mark_problem(self, ticker: str, price: Decimal) -> str | None:
        """Why `price` cannot be the mark of `ticker` (None if it can)."""
        return mark_problem(price, self.tick(ticker))

    def on_tick(self, ticker: str, price: Decimal) -> Decimal:
        """`price` on the instrument's tick, to the nearest one: a mark is where the market
        trades, and no market trades between ticks (an ES signalPrice of 5000.1 is 5000)."""
        tick = self.tick(ticker) or stock_tick(price)
        return (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
