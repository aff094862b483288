"""`tradepipe risk` (SPEC §13): the trading state of each scope, and per account its risk limits
and their current use; per subscription with limits, its trades today and losses in a row.
Through the running daemon (its live figures) when there is one, else from the journal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tradepipe.cli import JsonOption, app, load
from tradepipe.cli.render import cell, markup, out, print_json, when

_STATE_STYLE = {"active": "green", "reduce_only": "yellow", "halted": "red"}


@app.command(
    epilog="Examples: `tradepipe risk`, `tradepipe risk --json | jq '.accounts[0].use'`"
    " (limits are set in [accounts.NAME.risk]; `tradepipe resume` ends a trip)"
)
def risk(as_json: JsonOption = False) -> None:
    """Trading states, risk limits and their use now: equity, the day's P&L, drawdown, gross
    exposure, open positions, orders in the last minute; trades today, losses in a row."""
    from tradepipe.daemon.client import risk as gather

    report = gather(load())
    if as_json:
        print_json(report)
        return
    render_risk(report)


def _state(name: str) -> str:
    return f"[{_STATE_STYLE.get(name, 'white')}]{name}[/]"


def _of(value: Any, limit: Any) -> str:
    """ "1,200 of 5,000" (or just the use when there is no limit)."""
    shown = "—" if value is None else str(value)
    return shown if limit is None else f"{shown} [dim]of[/] {limit}"


def render_risk(report: dict[str, Any]) -> None:
    source = "the daemon" if report.get("daemon") else "the journal (no daemon running)"
    out.print(markup("[dim]risk figures from {} at {}[/]", source, when(report["at"])))
    if not report["states"]:
        out.print(f"states  {_state('active')} everywhere (no halt, no trip in force)")
    for row in report["states"]:
        scope = row["scope"] if not row["name"] else f"{row['scope']} {row['name']}"
        until = f" until {when(row['until_at'])}" if row["until_at"] else " until resumed"
        line = (
            markup("{}: ", scope) + _state(row["state"]) + markup(" ({}){}", row["reason"], until)
        )
        if row["limit"]:
            line += markup(" [dim]tripped {} by {}[/]", when(row["set_at"]), row["limit"])
        out.print(line)
    table = Table(title="accounts", title_justify="left")
    for column in (
        "account",
        "equity",
        "day's P&L",
        "drawdown",
        "gross exposure",
        "open positions",
        "orders/min",
        "order value ≤",
        "on trip",
    ):
        table.add_column(column)
    for account in report["accounts"]:
        limits, resolved, use = account["limits"], account["limits_resolved"], account["use"]
        loss = limits["max_daily_loss"] and f"-{limits['max_daily_loss']}"
        pnl = use["day_pnl"]
        pnl_cell = f"[red]{pnl}[/]" if pnl and pnl.startswith("-") else str(pnl or "—")
        table.add_row(
            cell(account["account"]),
            str(use["equity"] or "—"),
            _of(pnl_cell, loss),
            _of(use["drawdown"], limits["max_drawdown"]),
            _of(use["gross_exposure"], limits["max_gross_exposure"]),
            _of(use["open_positions"], limits["max_open_positions"]),
            _of(use["orders_last_minute"], limits["max_orders_per_minute"]),
            f"{limits['max_order_value']}"
            + (
                f" = {resolved['max_order_value']}"
                if str(limits["max_order_value"]).endswith("%") and resolved["max_order_value"]
                else ""
            ),
            limits["on_trip"],
        )
    out.print(table)
    if report["subscriptions"]:
        subs = Table(title="subscriptions with limits", title_justify="left")
        for column in ("subscription", "account", "trades today", "losses in a row", "cooldown"):
            subs.add_column(column)
        for row in report["subscriptions"]:
            limits, use = row["limits"], row["use"]
            cooldown = use["cooldown_ends_at"]
            subs.add_row(
                cell(row["subscription"]),
                cell(row["account"]),
                _of(use["trades_today"], limits["max_trades_per_day"]),
                _of(use["consecutive_losses"], limits["max_consecutive_losses"]),
                f"ends {when(cooldown)}" if cooldown else "—",
            )
        out.print(subs)
