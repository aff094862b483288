"""`tradepipe report` (SPEC §14): round trips, P&L, drawdown, the equity curve and execution
quality, read from the journal (with or without the daemon) and figured by core/report.py.

What the journal does not say comes from the config: what one unit is worth (the ticker's form
and `[accounts.NAME.instruments]`, SPEC §12) and which strategy a subscription belongs to when a
fill has no signal. The report's JSON shape is `report_view`'s: keys may be added, never renamed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradepipe.cli import (
    CsvOption,
    SinceOption,
    app,
    load,
    moment,
    one_format,
    open_journal,
)
from tradepipe.core.report import GroupBy

if TYPE_CHECKING:
    from tradepipe.core.report import Figures, Percentiles, Report

DRAWDOWN_OF = "realized equity curve: cumulative net P&L of the round trips, in closing order"

UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Before this moment (exclusive; a date means its 00:00 UTC)."),
]
ByOption = Annotated[
    GroupBy, typer.Option("--by", help="One line per subscription, strategy, account or ticker.")
]
ReportJsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object with everything, for scripts.")
]
TripsOption = Annotated[
    bool, typer.Option("--trips", help="List the round trips (table or --csv) instead.")
]


@app.command(
    epilog="Examples: `tradepipe report --since 2026-12-01`, `tradepipe report --by ticker"
    " --since 7d`, `tradepipe report --json`, `tradepipe report --trips --csv > trips.csv`"
)
def report(
    since: SinceOption = None,
    until: UntilOption = None,
    by: ByOption = GroupBy.SUBSCRIPTION,
    trips: TripsOption = False,
    as_json: ReportJsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Performance: round trips matched first-in first-out per subscription and ticker,
    realized P&L (× the multiplier, net of the fees brokers report), unrealized P&L at the last
    mark, win rate, profit factor, average win and loss, maximum drawdown, the equity curve,
    and execution quality (slippage against signalPrice, latencies p50/p95)."""
    from tradepipe.cli.render import print_csv, print_json
    from tradepipe.cli.report_render import print_report, print_trips
    from tradepipe.engine.performance import build_report

    one_format(as_json, as_csv)
    config = load()
    built, extras = build_report(
        config, open_journal(config), by, moment(since, "--since"), moment(until, "--until")
    )
    view = report_view(built, extras)
    if as_json:
        print_json(view)
    elif as_csv:
        print_csv(view["round_trips"] if trips else [*view["groups"], view["total"]])
    elif trips:
        print_trips(view)
    else:
        print_report(view)


# -- the JSON shape -------------------------------------------------------------------------------


def num(value: Decimal | float | None) -> int | float | None:
    """A figure as a JSON number: whole numbers stay integers."""
    if value is None:
        return None
    if value == 0:  # never -0 (a sell filled at its signal's price)
        return 0
    if isinstance(value, float):
        return round(value, 6)
    return int(value) if value == value.to_integral_value() else float(value)


def _figures(f: Figures) -> dict[str, Any]:
    return {
        "group": f.group,
        "trades": f.trades,
        "wins": f.wins,
        "losses": f.losses,
        "win_rate": num(f.win_rate),
        "realized": num(f.realized),
        "fees": num(f.fees),
        "unrealized": num(f.unrealized),
        "profit_factor": num(f.profit_factor),
        "average_win": num(f.average_win),
        "average_loss": num(f.average_loss),
        "gross_profit": num(f.gross_profit),
        "gross_loss": num(f.gross_loss),
        "max_drawdown": num(f.max_drawdown),
        "open_quantity": num(f.open_quantity),
    }


def _spread(p: Percentiles) -> dict[str, Any]:
    return {"count": p.count, "p50": num(p.p50), "p95": num(p.p95)}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def report_view(r: Report, extras: dict[str, Any]) -> dict[str, Any]:
    """The report as `--json` prints it."""
    return {
        "since": _iso(r.since),
        "until": _iso(r.until),
        "by": r.by.value,
        "groups": [_figures(g) for g in r.groups],
        "total": _figures(r.total),
        "max_drawdown_of": DRAWDOWN_OF,
        "accounts": [
            {k: num(v) if isinstance(v, Decimal) else v for k, v in a.items()}
            for a in extras["accounts"]
        ],
        "round_trips": [
            {
                "subscription": t.subscription,
                "strategy": t.strategy,
                "account": t.account,
                "ticker": t.ticker,
                "direction": t.direction,
                "quantity": num(t.quantity),
                "entry_price": num(t.entry_price),
                "exit_price": num(t.exit_price),
                "multiplier": num(t.multiplier),
                "gross": num(t.gross),
                "fees": num(t.fees),
                "net": num(t.net),
                "opened_at": t.opened_at.isoformat(),
                "closed_at": t.closed_at.isoformat(),
            }
            for t in r.round_trips
        ],
        "open": [
            {
                "subscription": lot.subscription,
                "account": lot.account,
                "ticker": lot.ticker,
                "direction": lot.direction,
                "quantity": num(lot.quantity),
                "price": num(lot.price),
                "opened_at": lot.opened_at.isoformat(),
            }
            for lot in r.open_lots
        ],
        "marks": [{**m, "price": num(m["price"])} for m in extras["marks"]],
        "unmarked": list(r.unmarked),
        "curve": [{"at": at.isoformat(), "realized": num(value)} for at, value in r.curve],
        "execution": {
            "slippage_total": num(r.slippage_total),
            "slippage_bps": _spread(r.slippage_bps),
            "alert_latency_seconds": _spread(r.alert_latency),
            "submit_latency_seconds": _spread(r.submit_latency),
            "fill_latency_seconds": _spread(r.fill_latency),
        },
        "executions": [
            {
                "fill_id": e.fill_id,
                "account": e.account,
                "ticker": e.ticker,
                "side": e.side.value,
                "quantity": num(e.quantity),
                "price": num(e.price),
                "signal_price": num(e.signal_price),
                "slippage": num(e.slippage),
                "slippage_bps": num(e.slippage_bps),
                "alert_latency_seconds": num(e.alert_latency),
                "submit_latency_seconds": num(e.submit_latency),
                "fill_latency_seconds": num(e.fill_latency),
            }
            for e in r.executions
        ],
        "fees": {
            "unreported_fills": extras["fees"]["unreported_fills"],
            "not_netted": [{**n, "fee": num(n["fee"])} for n in extras["fees"]["not_netted"]],
        },
    }
