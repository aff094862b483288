"""The performance report's inputs (SPEC §14), read from the journal and completed from the
config, then figured by core/report.py: `tradepipe report` and the daily summary both build it
here.

What the journal does not say comes from the config: what one unit is worth (the ticker's form
and `[accounts.NAME.instruments]`, SPEC §12) and which strategy a subscription belongs to when a
fill has no signal.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.core.report import GroupBy, Report
    from tradepipe.journal import Journal


def build_report(
    config: Config,
    journal: Journal,
    by: GroupBy,
    since: datetime | None,
    until: datetime | None,
) -> tuple[Report, dict[str, Any]]:
    """The report over [since, until), and what it could not count (fees it left out, the
    marks it used, each account's equity snapshots)."""
    from tradepipe.core.instruments import unit_multiplier
    from tradepipe.core.model import Side
    from tradepipe.core.report import make_report, max_drawdown, netted_fee
    from tradepipe.core.round_trips import ReportFill
    from tradepipe.journal.report_rows import equity_series, last_marks, report_fills

    # Only paper accounts take [accounts.NAME.instruments]; the others' futures use the table.
    overrides = {
        name: account.contract_specs()
        for name, account in config.accounts.items()
        if hasattr(account, "contract_specs")
    }
    pairs = {name for name, account in config.accounts.items() if account.broker == "ccxt"}
    strategy_of = {name: s.strategy for name, s in config.subscriptions.items()}
    multipliers: dict[tuple[str, str], Decimal] = {}
    fills, not_netted, unreported = [], [], 0
    for row in report_fills(journal):
        key = (row.account, row.ticker)
        if key not in multipliers:
            multipliers[key] = unit_multiplier(row.ticker, overrides.get(row.account))
        fee = netted_fee(row.ticker, row.fee, row.fee_currency, is_pair=row.account in pairs)
        unreported += row.fee is None
        if fee is None:
            not_netted.append({"fill_id": row.id, "fee": row.fee, "currency": row.fee_currency})
        strategy = row.strategy or strategy_of.get(row.subscription or "")
        fills.append(
            ReportFill(
                id=row.id,
                order_id=row.order_id,
                account=row.account,
                ticker=row.ticker,
                side=Side(row.side),
                quantity=row.quantity,
                price=row.price,
                filled_at=row.filled_at,
                subscription=row.subscription,
                strategy=strategy,
                multiplier=multipliers[key],
                fee=fee or Decimal(0),
                role=row.role,
                signal_price=row.signal_price,
                alert_at=row.alert_at,
                received_at=row.received_at,
                submitted_at=row.submitted_at,
            )
        )
    marks = last_marks(journal)
    built = make_report(
        fills, {k: price for k, (price, _) in marks.items()}, by=by, since=since, until=until
    )
    accounts = []
    for account, series in sorted(equity_series(journal).items()):
        inside = [(at, e) for at, e in series if _within(at, since, until)]
        if inside:
            values = [e for _, e in inside]
            accounts.append(
                {
                    "account": account,
                    "snapshots": len(inside),
                    "equity_first": values[0],
                    "equity_last": values[-1],
                    "max_drawdown": max_drawdown(values, start=values[0]),
                }
            )
    extras = {
        "fees": {"unreported_fills": unreported, "not_netted": not_netted},
        "marks": [
            {"account": a, "ticker": t, "price": p, "source": source}
            for (a, t), (p, source) in sorted(marks.items())
            if any(lot.account == a and lot.ticker == t for lot in built.open_lots)
        ],
        "accounts": accounts,
        "fills": Counter(f.account for f in fills if _within(f.filled_at, since, until)),
    }
    return built, extras


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)
