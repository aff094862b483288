"""`tradepipe report` for people: the figures per group, the equity curve drawn with rich's own
block characters (no plotting library: a few dozen columns of `▁▂▃▄▅▆▇█` say what the curve
does, and work in any terminal and in a log), and execution quality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tradepipe.cli.render import cell, markup, out, styled

BLOCKS = " ▁▂▃▄▅▆▇█"


def money(value: float | None) -> Text:
    """A P&L figure: two decimals, green above 0, red below."""
    if value is None:
        return Text("—", style="dim")
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:,.2f}", style=style)


def plain(value: float | None, spec: str = ",.2f") -> str:
    return "—" if value is None else format(value, spec)


def chart(values: Sequence[float], width: int = 60, height: int = 8) -> list[str]:
    """`values` as `height` lines of `width` columns at most, each column the value at its share
    of the sequence, filled from the bottom with eighth blocks; the lowest value is the floor."""
    if not values:
        return []
    columns = min(width, len(values))
    picked = [values[round(i * (len(values) - 1) / max(columns - 1, 1))] for i in range(columns)]
    low, high = min(picked), max(picked)
    span = high - low
    eighths = [round((v - low) / span * height * 8) if span else height * 4 for v in picked]
    lines = []
    for row in range(height - 1, -1, -1):  # top line first
        lines.append("".join(BLOCKS[max(0, min(8, e - row * 8))] for e in eighths).rstrip())
    return lines


def print_report(view: dict[str, Any]) -> None:
    window = f"{view['since'] or 'the start'} → {view['until'] or 'now'}"
    out.print(markup("[bold]report[/] {} · by {}", window, view["by"]))
    table = Table(title=f"performance by {view['by']}")
    columns = ("group", "trades", "win %", "realized", "fees", "unrealized", "profit factor",
               "avg win", "avg loss", "max drawdown", "open")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "group" else "right")
    for figures in [*view["groups"], view["total"]]:
        f = figures
        table.add_row(
            cell(f["group"]) if f is not view["total"] else Text("total", style="bold"),
            str(f["trades"]),
            plain(f["win_rate"] * 100 if f["win_rate"] is not None else None, ".0f"),
            money(f["realized"]),
            plain(f["fees"]),
            money(f["unrealized"]),
            plain(f["profit_factor"])
            if f["profit_factor"] is not None
            else ("∞" if f["wins"] else "—"),
            money(f["average_win"]),
            money(f["average_loss"]),
            plain(f["max_drawdown"]),
            plain(f["open_quantity"], "g"),
        )
    out.print(table)
    out.print(markup("[dim]max drawdown of the {}[/]", view["max_drawdown_of"]))
    for account in view["accounts"]:
        line = "[dim]equity snapshots of {}: {} from {:,.2f} to {:,.2f}, max drawdown {:,.2f}[/]"
        out.print(
            markup(
                line,
                account["account"],
                account["snapshots"],
                account["equity_first"],
                account["equity_last"],
                account["max_drawdown"],
            )
        )
    _print_curve(view)
    _print_execution(view)
    _print_notes(view)


def _print_curve(view: dict[str, Any]) -> None:
    values = [point["realized"] for point in view["curve"]]
    if len(values) < 2:
        return
    lines = chart([0.0, *values], width=min(60, max(out.width - 14, 10)))
    high, low = max([0.0, *values]), min([0.0, *values])
    out.print("\n[bold]realized equity curve[/] (net P&L after each round trip)")
    for n, line in enumerate(lines):
        label = (
            f"{high:>11,.2f} " if n == 0 else f"{low:>11,.2f} " if n == len(lines) - 1 else " " * 12
        )
        out.print(Text(label) + styled(line, "cyan"))
    first, last = view["curve"][0]["at"][:16], view["curve"][-1]["at"][:16]
    out.print(markup("[dim]{}{} → {}[/]", " " * 12, first, last))


def _print_execution(view: dict[str, Any]) -> None:
    execution = view["execution"]
    out.print("\n[bold]execution quality[/]")
    slip = execution["slippage_bps"]
    if slip["count"]:
        out.print(
            markup(
                "  slippage vs signalPrice ({} fills; + = worse): total {:,.2f},"
                " p50 {} bps, p95 {} bps",
                slip["count"],
                execution["slippage_total"],
                plain(slip["p50"], ".1f"),
                plain(slip["p95"], ".1f"),
            )
        )
    else:
        out.print("  [dim]slippage: no fill of an entry or exit whose signal had signalPrice[/]")
    for key, what in (
        ("alert_latency_seconds", "alert time → received"),
        ("submit_latency_seconds", "received → submitted"),
        ("fill_latency_seconds", "received → filled"),
    ):
        spread = execution[key]
        if spread["count"]:
            shown = "  {}: p50 {} s, p95 {} s ({} fills)"
            p50, p95 = plain(spread["p50"], ".3f"), plain(spread["p95"], ".3f")
            out.print(markup(shown, what, p50, p95, spread["count"]))
        else:
            out.print(markup("  [dim]{}: none measured[/]", what))


def _print_notes(view: dict[str, Any]) -> None:
    fees = view["fees"]
    if fees["unreported_fills"]:
        note = "[dim]{} fills without a fee from their broker (Alpaca and paper report none)[/]"
        out.print(markup(note, fees["unreported_fills"]))
    if fees["not_netted"]:
        note = "[yellow]{} fees in another currency are not netted[/] (see --json fees)"
        out.print(markup(note, len(fees["not_netted"])))
    for mark in view["marks"]:
        shown = "[dim]mark {} {}: {} ({})[/]"
        out.print(markup(shown, mark["account"], mark["ticker"], mark["price"], mark["source"]))
    if view["unmarked"]:
        out.print(markup("[yellow]no mark, unrealized 0[/]: {}", ", ".join(view["unmarked"])))


def print_trips(view: dict[str, Any]) -> None:
    trips = view["round_trips"]
    if not trips:
        out.print("[dim]no round trips[/]")
        return
    table = Table(title="round trips")
    for column in ("closed", "subscription", "ticker", "dir", "qty", "entry", "exit",
                   "×", "fees", "net"):  # fmt: skip
        table.add_column(column)
    for t in trips:
        table.add_row(
            t["closed_at"][5:19].replace("T", " "),
            cell(t["subscription"] or "(none)"),
            cell(t["ticker"]),
            t["direction"],
            plain(t["quantity"], "g"),
            plain(t["entry_price"], "g"),
            plain(t["exit_price"], "g"),
            plain(t["multiplier"], "g"),
            plain(t["fees"]),
            money(t["net"]),
        )
    out.print(table)
