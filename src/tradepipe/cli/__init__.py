"""The command line: a skin over the journal, the daemon and the engine.

Each command parses, loads the config, calls one function and renders with rich. Errors become
one line and an exit code (0 success, 1 runtime failure, 2 usage or configuration error); a
traceback only with --debug. Heavy modules are imported inside the commands so that
`tradepipe --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradepipe.cli.render import cell, coloured, markup, styled

app = typer.Typer(
    name="tradepipe",
    help="Self-hosted TradingView webhook → broker order router.\n\n"
    "Start with `tradepipe serve`: with no config it writes a starter one (paper broker) and "
    "prints the webhook URL.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
signals_app = typer.Typer(help="The signal log, and one signal in detail.")
config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
paper_app = typer.Typer(help="The built-in paper broker.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail: list it, verify its hash chain.")
secrets_app = typer.Typer(
    help="Broker credentials, kept in the system keyring.", no_args_is_help=True
)
app.add_typer(signals_app, name="signals")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(paper_app, name="paper")
app.add_typer(secrets_app, name="secrets")

# soft_wrap: a webhook URL or a JSON example must stay on one line to be copied.
# emoji=False: a ":name:" in data stays text. Data reaches markup only through tradepipe.cli.render.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class State:
    config_path: Path | None = None
    debug: bool = False


state = State()

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON array for scripts.")]
AccountOption = Annotated[str | None, typer.Option("--account", "-a", help="Only this account.")]
TickerOption = Annotated[
    str | None, typer.Option("--ticker", "-t", help="Only this ticker (as the account spells it).")
]


def limit_option(default: int) -> Any:
    return typer.Option(min=1, help=f"How many, newest first (default {default}).")


class SignalStatus(StrEnum):
    """What `signals --status` takes (SPEC §10's signal statuses)."""

    accepted = "accepted"
    processed = "processed"
    rejected = "rejected"
    duplicate = "duplicate"


CONFIG_HELP = "Config file (else $TRADEPIPE_CONFIG, ./tradepipe.toml, the user config dir)."
DEBUG_HELP = "Show tracebacks and debug logs."


def _print_version(value: bool) -> None:
    if value:
        from tradepipe import __version__

        out.print(f"tradepipe {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state.config_path = config
    state.debug = debug


# -- configuration ---------------------------------------------------------------------------


def config_location() -> tuple[Path, bool]:
    from tradepipe.config import find_config_path

    return find_config_path(state.config_path, os.environ, Path.cwd())


def missing_config(path: Path) -> Exception:
    """The error for a config file that is not there: a path the user named is a typo to fix,
    never a place to write a starter config (that goes only to the default location)."""
    from tradepipe.errors import ConfigError

    if state.config_path is not None:
        return ConfigError(f"config file {path} (from --config) does not exist")
    if os.environ.get("TRADEPIPE_CONFIG"):
        return ConfigError(f"config file {path} (from $TRADEPIPE_CONFIG) does not exist")
    return ConfigError(
        f"no config file at {path}: run `tradepipe serve` once to create a starter config,"
        " or pass --config PATH"
    )


def load() -> Any:
    from tradepipe.config import load_config

    path, exists = config_location()
    if not exists:
        raise missing_config(path)
    return load_config(path)


def open_journal(config: Any) -> Any:
    from tradepipe.journal import Journal

    return Journal.open(Path(config.journal.path), create=False)


def pick_strategy(config: Any, name: str | None) -> str:
    from tradepipe.errors import UsageError

    if name is not None:
        if name not in config.strategies:
            known = ", ".join(config.strategies) or "none"
            raise UsageError(f'no strategy "{name}" in {config.path} (strategies: {known})')
        return name
    if len(config.strategies) != 1:
        known = ", ".join(config.strategies) or "none"
        raise UsageError(f"the config has several strategies ({known}): pick one with --strategy")
    return next(iter(config.strategies))


# -- serve -----------------------------------------------------------------------------------


@app.command(
    epilog="Example: `tradepipe serve --port 8080` then, in another terminal, "
    '`tradepipe send \'{"ticker":"AAPL","action":"buy","quantity":5,"signalPrice":190}\'`'
)
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config).")] = None,
) -> None:
    """Run the daemon in the foreground: webhook listener, engine and brokers."""
    import asyncio

    from tradepipe.config import load_config, new_token, write_starter_config
    from tradepipe.daemon.logs import configure_logging
    from tradepipe.daemon.serve import serve as run

    configure_logging(debug=state.debug)  # one line per event, request data escaped
    path, exists = config_location()
    if not exists and (state.config_path is not None or os.environ.get("TRADEPIPE_CONFIG")):
        raise missing_config(path)
    if not exists:
        write_starter_config(path, new_token())
        wrote = "[green]Wrote a starter config[/] to {} (paper broker, one strategy)."
        err.print(markup(wrote, path))
    config = load_config(path)

    def ready(url: str) -> None:
        listening = "[bold green]tradepipe[/] listening on {} (journal {})"
        err.print(markup(listening, url, config.journal.path))
        for name, strategy_config in config.strategies.items():
            webhook = (
                config.webhook_url(name)
                if config.server.public_url
                else f"{url}/webhook/{strategy_config.token}"
            )
            if exists:
                # The token is the URL's secret, and this output lands in journald: the full
                # URL is printed once, with the starter config, and by `tradepipe strategies`.
                token = strategy_config.token
                webhook = webhook.replace(token, f"{token[:3]}…(hidden)")
            err.print(markup("  webhook for strategy [bold]{}[/]: {}", name, webhook))
        if exists:
            err.print("  full webhook URLs: tradepipe strategies")
        example = '{"ticker":"AAPL","action":"buy","quantity":5,"signalPrice":190}'
        config_flag = f" --config {path}" if state.config_path else ""
        err.print(markup("  try: tradepipe{} send '{}'", config_flag, example))
        sys.stderr.flush()

    asyncio.run(run(config, host=host, port=port, on_ready=ready))


# -- send ------------------------------------------------------------------------------------


@app.command(
    epilog='Examples: `tradepipe send \'{"ticker":"AAPL","action":"buy","quantity":5}\'`,'
    " `tradepipe send -f alert.json --wait`, `echo '{...}' | tradepipe send -`"
)
def send(
    payload: Annotated[
        str | None, typer.Argument(help="The signal as JSON; '-' or nothing reads stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the JSON from a file.")
    ] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="Strategy name.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait and print the deliveries.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Post a signal to the running daemon, as TradingView would (runs it here if none runs)."""
    from tradepipe.daemon.client import deliver_signal
    from tradepipe.errors import UsageError

    config = load()
    name = pick_strategy(config, strategy)
    if file is not None:
        try:
            body = file.read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read --file {file}: {e.strerror}") from None
    elif payload is None or payload == "-":
        body = sys.stdin.buffer.read()
    else:
        body = payload.encode()
    status, answer, detail = deliver_signal(config, name, body, wait=wait, timeout=timeout)
    if as_json:
        print_json({**answer, **({"signal": detail} if detail else {})})
    else:
        render_answer(status, answer)
        if detail:
            render_deliveries(detail)
    if status >= 400:
        raise typer.Exit(1)


def render_answer(status: int, answer: dict[str, Any]) -> None:
    if answer.get("ok"):
        what = "duplicate of signal" if answer.get("duplicate") else "accepted as signal"
        out.print(markup("[green]{}[/] {} {}", status, what, answer["signal_id"]))
    else:
        out.print(markup("[red]{} {}[/]: {}", status, answer.get("code"), answer.get("message")))
        for problem in answer.get("errors", []):
            out.print(markup("  [red]•[/] {}: {}", problem["field"] or "body", problem["message"]))
    for warning in answer.get("warnings", []):
        out.print(markup("  [yellow]warning[/]: {}", warning))


def render_deliveries(detail: dict[str, Any]) -> None:
    if not detail["deliveries"]:
        out.print("  no deliveries (is a subscription enabled for this strategy?)")
    for delivery in detail["deliveries"]:
        out.print(
            markup("  {}: ", delivery["subscription"])
            + _coloured_status(delivery["status"])
            + markup(" — {}", delivery["reason"])
        )


STATUS_COLOURS = {
    "accepted": "cyan",
    "processed": "green",
    "submitted": "green",
    "filled": "green",
    "rejected": "red",
    "failed": "red",
    "skipped": "yellow",
    "duplicate": "yellow",
    "pending_approval": "magenta",
    "canceled": "yellow",
    "unknown": "red",
}


# -- reading commands ------------------------------------------------------------------------


def print_json(value: Any) -> None:
    """What --json prints: plain, indented JSON on stdout, the same on a terminal or a pipe."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def emit(
    rows: list[dict[str, Any]],
    as_json: bool,
    title: str,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], tuple[Any, ...]],
) -> None:
    """A listing: one JSON array with --json, else a table of `cells(row)` under `columns`."""
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"[dim]no {title}[/]")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell(value) for value in cells(row)))
    out.print(table)


def say_if_cut_short(shown: int, total: int, what: str) -> None:
    """On stderr, never inside --json's stdout: a listing that does not show every row."""
    if shown < total:
        err.print(f"showing {shown:,} of {total:,} {what}; use --limit N for more")


def _status(status: str) -> Any:
    """A status in its colour, for a table cell."""
    return styled(status, STATUS_COLOURS.get(status, "white"))


def _coloured_status(status: str) -> str:
    """A status in its colour, as markup for a line of text."""
    return coloured(status, STATUS_COLOURS.get(status, "white"))


def _when(iso: str) -> str:
    """A journal timestamp as a table shows it: 11-20 15:00:03 (UTC)."""
    return iso[5:19].replace("T", " ")


@signals_app.callback(invoke_without_command=True)
def signals(
    ctx: typer.Context,
    limit: Annotated[int, limit_option(50)] = 50,
    status: Annotated[SignalStatus | None, typer.Option(help="Only this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The signal log with each subscription's outcome. `tradepipe signals show ID` drills down."""
    if ctx.invoked_subcommand is not None:
        return
    from tradepipe.journal.views import newest, signal_views

    journal = open_journal(load())
    found, total = newest(journal, "signals", limit=limit, status=status and status.value)
    say_if_cut_short(len(found), total, "signals")
    rows = signal_views(journal, found)

    def outcome(row: dict[str, Any]) -> str:
        return row["error"] or "; ".join(
            f"{d['subscription']}: {d['status']}" + (f" ({d['reason']})" if d["reason"] else "")
            for d in row["deliveries"]
        )

    columns = ("id", "received", "strategy", "ticker", "action", "status", "outcome")
    emit(
        rows,
        as_json,
        "signals",
        columns,
        lambda r: (
            r["id"],
            _when(r["received_at"]),
            r["strategy"],
            r["ticker"],
            r["action"],
            _status(r["status"]),
            outcome(r),
        ),
    )


@signals_app.command("show", epilog="Example: `tradepipe signals show 12`")
def signals_show(signal_id: int, as_json: JsonOption = False) -> None:
    """One signal: payload, errors, and per subscription the plan, where each value came from,
    the orders and the broker's answers."""
    from tradepipe.errors import UsageError
    from tradepipe.journal.views import signal_detail

    journal = open_journal(load())
    detail = signal_detail(journal, signal_id)
    if detail is None:
        raise UsageError(f"no signal {signal_id} in the journal")
    if as_json:
        print_json(detail)
        return
    d = detail
    out.print(
        markup("[bold]signal {}[/] · strategy {} · {}", d["id"], d["strategy"], d["received_at"])
        + markup(" · from {} · ", d["source"])
        + _coloured_status(d["status"])
    )
    if detail["error"]:
        out.print(markup("[red]rejected[/]: {}", detail["error"]))
    for problem in detail["errors"]:
        out.print(markup("  [red]•[/] {}: {}", problem["field"] or "body", problem["message"]))
    for warning in detail["warnings"]:
        out.print(markup("  [yellow]warning[/]: {}", warning))
    out.print(markup("[dim]body:[/] {}", detail["body"]))
    for delivery in detail["deliveries"]:
        out.print(
            markup("\n[bold]{}[/] (account {}): ", delivery["subscription"], delivery["account"])
            + _coloured_status(delivery["status"])
            + markup(" — {}", delivery["reason"])
        )
        plan = delivery["plan"]
        if plan and plan.get("kind") == "plan":
            out.print(markup("  plan: {}", plan["summary"]))
        for line in delivery["provenance"]:
            out.print(markup("    {}", line))
        for o in delivery["orders"]:
            price = o["average_fill_price"]
            out.print(
                markup("  order {} {}: {} {}", o["id"], o["client_order_id"], o["role"], o["side"])
                + markup(" {} {} → {}", o["quantity"], o["order_type"], o["status"])
                + (markup(" at {}", price) if price is not None else "")
                + (markup(" — broker: {}", o["broker_message"]) if o["broker_message"] else "")
            )


@app.command(
    epilog="Examples: `tradepipe orders --ticker AAPL`, `tradepipe orders --limit 1000 --json`"
)
def orders(
    account: AccountOption = None,
    ticker: TickerOption = None,
    limit: Annotated[int, limit_option(200)] = 200,
    as_json: JsonOption = False,
) -> None:
    """Orders tradepipe sent, newest first."""
    from tradepipe.journal.views import newest, order_view

    journal = open_journal(load())
    found, total = newest(journal, "orders", limit=limit, account=account, ticker=ticker)
    say_if_cut_short(len(found), total, "orders")
    rows = [order_view(r) for r in found]
    columns = (
        "id",
        "signal",
        "account",
        "ticker",
        "role",
        "side",
        "qty",
        "filled",
        "type",
        "status",
    )
    emit(
        rows,
        as_json,
        "orders",
        columns,
        lambda r: (
            r["id"],
            r["signal_id"],
            r["account"],
            r["ticker"],
            r["role"],
            r["side"],
            r["quantity"],
            r["filled_quantity"],
            r["order_type"],
            _status(r["status"]),
        ),
    )


@app.command(
    epilog="Examples: `tradepipe trades --account paper`, `tradepipe trades --limit 5000 --json`"
)
def trades(
    account: AccountOption = None,
    ticker: TickerOption = None,
    limit: Annotated[int, limit_option(200)] = 200,
    as_json: JsonOption = False,
) -> None:
    """Fills, newest first."""
    from tradepipe.journal.views import newest, trade_view

    journal = open_journal(load())
    found, total = newest(journal, "fills", limit=limit, account=account, ticker=ticker)
    say_if_cut_short(len(found), total, "trades")
    rows = [trade_view(r) for r in found]
    emit(
        rows,
        as_json,
        "trades",
        ("id", "order", "account", "ticker", "side", "qty", "price", "filled at"),
        lambda r: (
            r["id"],
            r["order_id"],
            r["account"],
            r["ticker"],
            r["side"],
            r["quantity"],
            r["price"],
            _when(r["filled_at"]),
        ),
    )


@app.command()
def positions(account: AccountOption = None, as_json: JsonOption = False) -> None:
    """Open positions per account (signed: short < 0)."""
    from tradepipe.journal.views import position_view

    rows = [position_view(r) for r in open_journal(load()).positions(account=account)]

    def signed(quantity: Any) -> Any:
        return styled(quantity, "green" if quantity > 0 else "red")

    emit(
        rows,
        as_json,
        "positions",
        ("account", "ticker", "quantity", "average price"),
        lambda r: (r["account"], r["ticker"], signed(r["quantity"]), r["average_price"]),
    )


@app.command()
def pending(as_json: JsonOption = False) -> None:
    """Deliveries waiting for `tradepipe approve` (subscriptions with auto_submit = false)."""
    from tradepipe.journal.views import pending_view

    journal = open_journal(load())
    rows = [pending_view(d) for d in journal.deliveries_with_status("pending_approval")]
    emit(
        rows,
        as_json,
        "deliveries waiting for approval",
        ("id", "signal", "subscription", "ticker", "plan at the signal", "since"),
        lambda r: (
            r["id"],
            r["signal_id"],
            r["subscription"],
            r["ticker"],
            r["plan"],
            _when(r["created_at"]),
        ),
    )


def _review(delivery_id: int, approve: bool, as_json: bool) -> None:
    from tradepipe.daemon.client import act

    result = act(load(), "/api/review", {"delivery_id": delivery_id, "approve": approve})
    if as_json:
        print_json(result)
    else:
        out.print(
            markup("delivery {}: ", delivery_id)
            + _coloured_status(result["status"])
            + markup(" — {}", result["reason"])
        )
        if result.get("changed"):
            changed = "  [yellow]the plan changed[/] since the signal: {}"
            out.print(markup(changed, result["plan_at_signal"]))
            out.print(markup("  → now: {}", result["plan_now"]))
    if result["status"] in ("failed",):
        raise typer.Exit(1)


@app.command(epilog="Example: `tradepipe pending` then `tradepipe approve 7`")
def approve(delivery_id: int, as_json: JsonOption = False) -> None:
    """Approve a waiting delivery: it is planned again against the position now, then sent."""
    _review(delivery_id, True, as_json)


@app.command(epilog="Example: `tradepipe reject 7`")
def reject(delivery_id: int, as_json: JsonOption = False) -> None:
    """Reject a waiting delivery: nothing is sent."""
    _review(delivery_id, False, as_json)


@app.command()
def strategies(as_json: JsonOption = False) -> None:
    """Webhook URLs and a ready-to-paste TradingView alert message per strategy."""
    config = load()
    rows = []
    for name in config.strategies:
        message: dict[str, Any] = {
            "ticker": "{{ticker}}",
            "action": "{{strategy.order.action}}",
            "sentiment": "{{strategy.market_position}}",
            "quantity": "{{strategy.order.contracts}}",
            "signalPrice": "{{close}}",
            "time": "{{timenow}}",
        }
        if config.strategies[name].passphrase:
            message["passphrase"] = "YOUR-PASSPHRASE"
        subscriptions = [s for s, _ in config.subscriptions_for(name)]
        rows.append(
            {
                "strategy": name,
                "webhook_url": config.webhook_url(name),
                "subscriptions": subscriptions,
                "tradingview_message": json.dumps(message),
            }
        )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        subscribed = ", ".join(row["subscriptions"]) or "no subscription"
        out.print(markup("[bold]{}[/] → {}", row["strategy"], subscribed))
        out.print(markup("  Webhook URL: {}", row["webhook_url"]))
        out.print("  TradingView message:")
        out.print(markup("  {}", row["tradingview_message"]), soft_wrap=True)
    if not config.server.public_url:
        out.print(
            "[yellow]note[/]: set [server].public_url to the HTTPS address TradingView reaches"
            " (TradingView only posts to ports 80 and 443)."
        )


@config_app.command(
    "check",
    epilog="Examples: `tradepipe --config /etc/tradepipe.toml config check`,"
    " `tradepipe config check --offline` (the file only), `tradepipe config check --json`",
)
def config_check(
    offline: Annotated[
        bool, typer.Option("--offline", help="Only validate the file; connect to no broker.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validate the config file, then connect to each account and report its equity, buying
    power and capabilities. Exit 2 if a credential is missing, 1 if a broker cannot be reached."""
    import asyncio

    from tradepipe.cli.checking import check_accounts

    config = load()
    reports = [] if offline else asyncio.run(check_accounts(config))
    strategies = {
        name: [s for s, _ in config.subscriptions_for(name)] for name in config.strategies
    }
    if as_json:
        print_json(
            {
                "config": str(config.path),
                "journal": str(config.journal.path),
                "accounts": reports
                or [{"account": n, "broker": a.broker} for n, a in config.accounts.items()],
                "strategies": strategies,
            }
        )
    else:
        out.print(markup("[green]ok[/] {}", config.path))
        if offline:
            for name, account in config.accounts.items():
                line = "  account [bold]{}[/]: broker {} (not connected)"
                out.print(markup(line, name, account.broker))
        for report in reports:
            _print_account_check(report)
        for name, subscriptions in strategies.items():
            listed = ", ".join(subscriptions) or "none enabled"
            out.print(markup("  strategy [bold]{}[/]: subscriptions {}", name, listed))
        out.print(markup("  journal: {}", config.journal.path))
    if any(r.get("config_error") for r in reports):
        raise typer.Exit(2)
    if any(not r["ok"] for r in reports):
        raise typer.Exit(1)


def _print_account_check(report: dict[str, Any]) -> None:
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


@secrets_app.command(
    "set",
    epilog="Examples: `tradepipe secrets set alpaca-live` (asks), "
    '`printf \'%s\\n%s\\n\' "$KEY" "$SECRET" | tradepipe secrets set alpaca-live`',
)
def secrets_set(account: str) -> None:
    """Store ACCOUNT's broker key and secret in the system keyring (asked for, not echoed; or
    read as lines from stdin: key, secret, and a passphrase for exchanges that need one)."""
    from tradepipe.brokers import NEEDS_CREDENTIALS
    from tradepipe.config import credentials
    from tradepipe.errors import UsageError

    config = load()
    if account not in config.accounts:
        known = ", ".join(config.accounts) or "none"
        raise UsageError(f'no account "{account}" in {config.path} (accounts: {known})')
    broker = config.accounts[account].broker
    if broker not in NEEDS_CREDENTIALS:
        why = "logs in inside TWS / IB Gateway" if broker == "ibkr" else "needs none"
        raise UsageError(f"account {account} (broker {broker}) {why}: no credentials to store")
    if sys.stdin.isatty():
        key = typer.prompt(f"{account} API key", hide_input=True)
        secret = typer.prompt(f"{account} API secret", hide_input=True)
        passphrase = ""
        if broker == "ccxt":
            passphrase = typer.prompt(
                "passphrase (empty if the exchange has none)", default="", hide_input=True
            )
    else:
        lines = [line.strip() for line in sys.stdin.read().splitlines()]
        key, secret, passphrase = ([*lines, "", "", ""])[:3]
    if not key or not secret:
        raise UsageError(f"account {account}: both an API key and a secret are needed")
    backend = credentials.store(
        account, credentials.Credentials(key, secret, passphrase or None, "keyring")
    )
    out.print(markup("[green]ok[/] credentials of {} stored in the keyring ({})", account, backend))


@paper_app.command("quote", epilog="Example: `tradepipe paper quote paper AAPL 191.25`")
def paper_quote(
    account: str,
    ticker: str,
    price: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Move the paper broker's mark for TICKER; resting orders that it crosses fill (and their
    one-cancels-other siblings are canceled)."""

    from tradepipe.brokers.paper.broker import mark_problem
    from tradepipe.daemon.client import act
    from tradepipe.errors import UsageError

    try:
        value = Decimal(price)
    except InvalidOperation:
        value = Decimal("NaN")
    problem = mark_problem(value)
    if problem:
        raise UsageError(f"paper quote: price {price!r} {problem}")
    payload = {"account": account, "ticker": ticker, "price": str(value)}
    result = act(load(), "/api/paper/quote", payload)
    if as_json:
        print_json(result)
        return
    moved = [
        f"{what}: {', '.join(result.get(what, []))}"
        for what in ("filled", "canceled", "rejected")
        if result.get(what)
    ]
    done = "[green]ok[/] {} {} mark {} ({})"
    summary = "; ".join(moved) if moved else "no order filled or canceled"
    out.print(markup(done, account, result["ticker"], result["price"], summary))


@app.command(
    epilog="Examples: `tradepipe flatten --account paper --ticker AAPL`,"
    " `tradepipe flatten --yes` (everything, no question)"
)
def flatten(
    account: AccountOption = None,
    ticker: Annotated[str | None, typer.Option("--ticker", "-t", help="Only this ticker.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cancel the open orders, then close the positions (market orders), of an account and
    ticker — or of everything. Asks first unless --yes."""
    from tradepipe.daemon.client import act
    from tradepipe.errors import UsageError

    config = load()
    if not yes:
        scope = f"{account or 'every account'}, {ticker or 'every ticker'}"
        if not sys.stdin.isatty():
            raise UsageError(f"flatten {scope}: pass --yes to confirm without a terminal")
        typer.confirm(f"Cancel open orders and close positions of {scope}?", abort=True)
    result = act(config, "/api/flatten", {"account": account, "ticker": ticker})
    if as_json:
        print_json(result)
        return
    if not result["flattened"]:
        out.print("[dim]nothing open: no positions, no open orders[/]")
    for item in result["flattened"]:
        closed = item["closed"]
        what = (
            markup("{} {} → ", closed["side"], closed["quantity"])
            + _coloured_status(closed["status"])
            + (markup(" ({})", closed["message"]) if closed["message"] else "")
            if closed
            else "no position"
        )
        canceled = len(item["canceled"])
        head = markup("{} {}: {} orders canceled; ", item["account"], item["ticker"], canceled)
        out.print(head + what)
        for left in item.get("left_working", []):  # the broker would not cancel it
            out.print(markup("  [yellow]left working[/]: {}", left))


@app.command(
    epilog="Examples: `tradepipe replay 12` (what it would do now),"
    " `tradepipe replay 12 --execute` (do it, with fresh order ids)"
)
def replay(
    signal_id: int,
    execute: Annotated[bool, typer.Option("--execute", help="Send it, as a new signal.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what a journaled signal would do now, per subscription; --execute sends it again
    as a new signal (fresh client order ids, the usual approval and audit trail)."""
    from tradepipe.daemon.client import act, wait_for_signal

    config = load()
    result = act(config, "/api/replay", {"signal_id": signal_id, "execute": execute})
    if execute:
        result["signal"] = wait_for_signal(config, result["signal_id"], timeout=30)
    if as_json:
        print_json(result)
        return
    if not execute:
        out.print(f"signal {signal_id} now ([dim]dry run: nothing sent[/]):")
        for plan in result["plans"]:
            what = plan.get("summary") or plan.get("reason")
            shown = markup("  {}: ", plan["subscription"]) + _coloured_status(plan["kind"])
            out.print(shown + markup(" {}", what))
        return
    out.print(f"[green]replayed[/] signal {signal_id} as signal {result['signal_id']}")
    render_deliveries(result["signal"])


@app.command(epilog="Example: `tradepipe status --json`")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The daemon, each account's broker (last check, errors, differences), blocked tickers,
    and work still pending (signals, approvals, orders of unknown state)."""
    from tradepipe.daemon.client import status as gather

    report = gather(load())
    daemon = report["daemon"]
    # Exit 1 without a daemon, like `systemctl status`: a script or a monitor can test it.
    if as_json:
        print_json(report)
        if not daemon["running"]:
            raise typer.Exit(1)
        return
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
            out.print(f"  {_stream_line(account['stream'])}")
        for difference in account["differences"]:
            out.print(markup("  [yellow]difference[/] {}", difference["difference"]))
    for block in report["blocked"]:
        line = "[red]blocked[/] {} {}: {}"
        out.print(markup(line, block["account"], block["ticker"], block["reason"]))
    for stalled in report["stalled_signals"]:
        line = "[red]stalled[/] signal {}: {}"
        out.print(markup(line, stalled["signal_id"], stalled["reason"]))
    pending = report["pending"]
    out.print(
        f"pending {pending['signals']} signals, {pending['approvals']} approvals,"
        f" {pending['unknown_orders']} orders of unknown state,"
        f" {pending['held_orders']} held bracket legs"
    )
    if not daemon["running"]:
        raise typer.Exit(1)


def _stream_line(stream: dict[str, Any]) -> str:
    """An account's order stream: `stream down since 11-20 15:00:03 (polling every 2 s): …`."""
    from rich.markup import escape

    since = f" since {_when(stream['since'])}" if stream.get("since") else ""
    if stream["up"]:
        return f"stream [green]listening[/]{since}"
    line = f"stream [yellow]down[/]{since} (polling every {stream['poll_interval']:g} s)"
    if stream.get("reason"):
        line += f": {escape(stream['reason'])}"
    if stream.get("poll_error"):
        line += f"; polling fails: {escape(stream['poll_error'])}"
    return line


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest last.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """What happened, in order: signals, plans, orders, fills and operator actions."""
    if ctx.invoked_subcommand is not None:
        return
    journal = open_journal(load())
    total = journal.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    rows = journal.events(after=max(total - limit, 0))
    say_if_cut_short(len(rows), total, "audit events")
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    columns = ("id", "at", "kind", "subject", "detail")

    def cells(row: dict[str, Any]) -> tuple[Any, ...]:
        detail = ", ".join(f"{k} {v}" for k, v in row["detail"].items())
        return row["id"], _when(row["at"]), row["kind"], row["subject"], detail

    emit(rows, as_json, "audit events", columns, cells)


@audit_app.command("verify", epilog="Example: `tradepipe audit verify` (exit 1 if broken)")
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Recompute the hash chain; name the first event that was edited, removed or inserted."""
    from tradepipe.core.audit import verify_chain

    verdict = verify_chain(open_journal(load()).events())
    if as_json:
        fields = ("ok", "events", "head", "broken_at", "problem")
        print_json({f: getattr(verdict, f) for f in fields})
    elif verdict.ok:
        intact = "[green]ok[/] {} events, chain intact; head {}"
        out.print(markup(intact, verdict.events, verdict.head))
    else:
        err.print(markup("[red]broken[/] {}", verdict.problem))
        err.print(f"  {verdict.events} events before it are intact (head {verdict.head})")
    if not verdict.ok:
        raise typer.Exit(1)


@app.command(
    epilog="Example: `tradepipe backup /var/backups/tradepipe-$(date +%F).db` (safe while"
    " `tradepipe serve` runs)"
)
def backup(
    path: Annotated[Path, typer.Argument(help="Where to write the copy.")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Copy the journal to PATH with SQLite's online backup: consistent, checked, atomic."""
    from tradepipe.journal.backup import backup_journal

    result = backup_journal(Path(load().journal.path), path, force=force)
    if as_json:
        print_json(result)
        return
    out.print(
        markup(
            "[green]ok[/] {backup}: {signals} signals, {orders} orders, {fills} fills,"
            " {bytes:,} bytes in {seconds} s",
            **result,
        )
    )


# -- options every command takes -------------------------------------------------------------
# `tradepipe serve --config X` as well as `tradepipe --config X serve`: each command and group
# also takes the global options after its name (the later one wins), and shows a flag as a flag
# (`--json`, not `--json <bool>`, which reads as if it took a value).


def _set_config(value: Path | None) -> None:
    if value is not None:
        state.config_path = value


def _set_debug(value: bool) -> None:
    if value:
        state.debug = True


_shared = typer.Typer(add_completion=False)


@_shared.command()
def _shared_options(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help=CONFIG_HELP, callback=_set_config)
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP, callback=_set_debug)] = False,
) -> None:
    """Never run: Typer builds the global options' parameters from this signature."""


@functools.cache
def _shared_parameters() -> list[Any]:
    parameters = typer.main.get_command(_shared).params
    for parameter in parameters:
        parameter.expose_value = False  # the callbacks keep the value, not the command
    return parameters


def _with_global_options(command: Any) -> None:
    names = {p.name for p in command.params}
    command.params.extend(p for p in _shared_parameters() if p.name not in names)


def _flags_as_flags(parameters: list[Any]) -> list[Any]:
    for parameter in parameters:
        if getattr(parameter, "is_flag", False) and parameter.metavar is None:
            parameter.metavar = ""
    return parameters


class _Command(typer.core.TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _with_global_options(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _with_global_options(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


def _use_global_options(typer_app: typer.Typer) -> None:
    typer_app.info.cls = _Group
    for info in typer_app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _use_global_options(group.typer_instance)


_use_global_options(app)


# -- entry point -----------------------------------------------------------------------------


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts) of the click that Typer runs on: the copy Typer ≥ 0.24 ships, else
    click itself (imported only then: a dozen milliseconds of every `tradepipe` run)."""
    try:
        from typer._click.exceptions import ClickException  # its Abort is typer.Abort
    except ImportError:
        from click.exceptions import Abort, ClickException

        return (ClickException,), (Abort, typer.Abort)
    return (ClickException,), (typer.Abort,)


def main() -> None:
    from tradepipe.errors import TradepipeError

    usage_errors, aborts = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except TradepipeError as e:
        if state.debug:
            raise
        err.print(markup("[red]error[/]: {}", e))
        sys.exit(e.exit_code)
    except aborts:
        err.print("aborted")
        sys.exit(1)
    except usage_errors as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if state.debug:
            raise
        line = "[red]error[/]: {}: {} (run with --debug for details)"
        err.print(markup(line, e.__class__.__name__, e))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
