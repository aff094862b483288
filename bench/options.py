"""How long choosing an option contract takes (SPEC §15, issue 18): `select_contract` over a
1,000-contract chain (25 expirations × 20 strikes × calls and puts), for each kind of ask.

    .venv/bin/python bench/options.py            # prints p50 / p99 per ask, in microseconds
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

from tradepipe.core.options import (
    OptionAsk,
    OptionContract,
    OptionRight,
    occ_symbol,
    select_contract,
)

TODAY = date(2026, 12, 4)


def chain() -> list[OptionContract]:
    expirations = [TODAY + timedelta(weeks=n) for n in range(25)]
    strikes = [Decimal(150 + 2.5 * i).quantize(Decimal("0.1")) for i in range(20)]
    return [
        OptionContract(occ_symbol("AAPL", e, r, s), "AAPL", r, e, s)
        for e in expirations
        for r in OptionRight
        for s in strikes
    ]


ASKS = {
    "atm call, nearest expiry": OptionAsk("call"),
    "both, +6 weeks, 3 otm": OptionAsk("both", "+6 weeks", strikes_away=3),
    "put, date, 2 itm": OptionAsk("put", "2027-03-01", strikes_away=2, intrinsic_value="itm"),
    "call, strikePrice": OptionAsk("call", "+2 weeks", strike_price=Decimal("171.3")),
}


def main(rounds: int = 2000) -> None:
    contracts = chain()
    print(f"chain: {len(contracts)} contracts; {rounds} selections per ask")
    price = Decimal("173.42")
    for name, ask in ASKS.items():
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            select_contract(contracts, price, TODAY, ask, bullish=True)
            times.append((time.perf_counter() - start) * 1e6)
        times.sort()
        p99 = times[int(len(times) * 0.99) - 1]
        print(f"  {name:28} p50 {statistics.median(times):7.0f} µs   p99 {p99:7.0f} µs")


if __name__ == "__main__":
    main()
