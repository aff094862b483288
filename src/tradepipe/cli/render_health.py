"""What the CLI shows of the daemon's health and the config: `tradepipe status` (brokers,
streams, trading states, pending work), `config check` and `strategies`. Values go through
cli/render.py's `markup` and `cell`, like every other output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradepipe.cli.render import (
    coloured,
    markup,
    out,
    when,
)

if TYPE_CHECKING:
    from tradepipe.config import Config


def print_account_check(report: dict[str, Any]) -> None:
    head = markup("  account [bold]{}[/]: broker {}", report["account"], report["broker"])
    if report.get("credentials"):
        head += markup(" (credentials from {})", report["credentials"])
    if not report["ok"]:
        out.print(head + markup(" [red]failed[/]: {}", report["error"]))
        return
    out.print(
        head
        + markup(
            " [green]connected[/]: equity {:,.2f}, buying power {:,.2f}, cash {:,.2f}",
            report["equity"],
            report["buying_power"],
            report["cash"],
        )
    )
    caps = report["capabilities"]
    flags = [name for name in ("brackets", "fractional", "short_selling", "quotes") if caps[name]]
    out.print(
        markup(
            "    order types {}; time in force {}; {}",
            ", ".join(caps["order_types"]),
            ", ".join(caps["time_in_force"]),
            ", ".join(flags) or "no brackets, no quotes",
        )
    )


def stream_line(stream: dict[str, Any]) -> str:
    """An account's order stream: `stream down since 11-20 15:00:03 (polling every 2 s): …`.
    The reason is the broker's or the websocket's own text: shown, never obeyed."""
    since = markup(" since {}", when(stream["since"])) if stream.get("since") else ""
    if stream["up"]:
        return f"stream [green]listening[/]{since}"
    every = f"{stream['poll_interval']:g}"
    line = f"stream [yellow]down[/]{since}" + markup(" (polling every {} s)", every)
    if stream.get("reason"):
        line += markup(": {}", stream["reason"])
    if stream.get("poll_error"):
        line += markup("; polling fails: {}", stream["poll_error"])
    return line


def render_status(report: dict[str, Any]) -> None:
    """`status`: the daemon, each account, blocked tickers, stalled signals, work pending."""
    daemon = report["daemon"]
    if daemon["running"]:
        out.print(markup("daemon  [green]running[/] at {} (pid {})", daemon["url"], daemon["pid"]))
    else:
        out.print("daemon  [yellow]not running[/] (brokers not checked)")
    out.print(markup("journal {}", report["journal"]))
    for account in report["accounts"]:
        state = {True: "[green]ok[/]", False: "[red]down[/]", None: "[dim]not checked[/]"}
        word = state[account["ok"]]
        if account.get("state") == "degraded":
            word = "[yellow]degraded[/]"
        line = markup("account {} ({}): ", account["name"], account["broker"]) + word
        if account["error"]:
            line += markup(" — {}", account["error"])
        out.print(line)
        if account.get("stream"):
            out.print(f"  {stream_line(account['stream'])}")
        for difference in account["differences"]:
            out.print(markup("  [yellow]difference[/] {}", difference["difference"]))
    for block in report["blocked"]:
        line = "[red]blocked[/] {} {}: {}"
        out.print(markup(line, block["account"], block["ticker"], block["reason"]))
    for stalled in report["stalled_signals"]:
        line = "[red]stalled[/] signal {}: {}"
        out.print(markup(line, stalled["signal_id"], stalled["reason"]))
    states = report.get("trading_states", [])
    if not states:
        out.print("trading [green]active[/] everywhere")
    for state in states:
        out.print("trading " + state_line(state))
    pending = report["pending"]
    out.print(
        f"pending {pending['signals']} signals, {pending['approvals']} approvals,"
        f" {pending['unknown_orders']} orders of unknown state,"
        f" {pending['held_orders']} held bracket legs,"
        f" {pending['notifications']} notifications"
    )
    if pending["notifications_given_up"]:
        line = "[red]notifications given up[/] {} (not sent within 24 h; `tradepipe audit`)"
        out.print(markup(line, pending["notifications_given_up"]))


def state_line(state: dict[str, Any]) -> str:
    """One scope's trading state: `halted account "live": operator: holiday (operator, since
    …)`."""
    colour = "red" if state["state"] == "halted" else "yellow"
    scope = state["scope"] if state["name"] is None else f'{state["scope"]} "{state["name"]}"'
    until = f", until {state['until_at']}" if state["until_at"] else ", until resumed"
    return coloured(state["state"], colour) + markup(
        " {}: {} ({}, since {}{})",
        scope,
        state["reason"],
        state["source"],
        state["set_at"],
        until,
    )


def render_strategies(rows: list[dict[str, Any]], has_public_url: bool) -> None:
    for row in rows:
        subscribed = ", ".join(row["subscriptions"]) or "no subscription"
        out.print(markup("[bold]{}[/] → {}", row["strategy"], subscribed))
        out.print(markup("  Webhook URL: {}", row["webhook_url"]))
        out.print("  TradingView message:")
        out.print(markup("  {}", row["tradingview_message"]), soft_wrap=True)
    if not has_public_url:
        out.print(
            "[yellow]note[/]: set [server].public_url to the HTTPS address TradingView reaches"
            " (TradingView only posts to ports 80 and 443)."
        )


def render_config_check(
    config: Config, offline: bool, reports: list[dict[str, Any]], strategies: dict[str, list[str]]
) -> None:
    out.print(markup("[green]ok[/] {}", config.path))
    if offline:
        for name, account in config.accounts.items():
            line = "  account [bold]{}[/]: broker {} (not connected)"
            out.print(markup(line, name, account.broker))
    for report in reports:
        print_account_check(report)
    for name, subscriptions in strategies.items():
        listed = ", ".join(subscriptions) or "none enabled"
        out.print(markup("  strategy [bold]{}[/]: subscriptions {}", name, listed))
    out.print(markup("  journal: {}", config.journal.path))
