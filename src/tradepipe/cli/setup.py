"""The setup commands: run the daemon, check the config, show each strategy's webhook and alert
message, store broker credentials, back the journal up."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tradepipe.cli import (
    CsvOption,
    JsonOption,
    app,
    config_app,
    config_location,
    load,
    missing_config,
    one_format,
    secrets_app,
    state,
)
from tradepipe.cli.render import (
    err,
    markup,
    out,
    print_csv,
    print_json,
)
from tradepipe.cli.render_health import render_config_check, render_strategies


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
    import gc

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
        # What start-up built (modules, config, the brokers' SDKs) lives as long as the
        # process: out of the collector's way, so that a full collection walks only what
        # trading allocated since, not a 20-40 ms pause inside whichever signal it falls on.
        gc.collect()
        gc.freeze()

    asyncio.run(run(config, host=host, port=port, on_ready=ready))


@app.command()
def strategies(as_json: JsonOption = False, as_csv: CsvOption = False) -> None:
    """Webhook URLs and a ready-to-paste TradingView alert message per strategy."""
    from tradepipe.config.alerts import strategy_alerts

    one_format(as_json, as_csv)
    config = load()
    rows = strategy_alerts(config)
    if as_json or as_csv:
        (print_json if as_json else print_csv)(rows)
        return
    render_strategies(rows, has_public_url=bool(config.server.public_url))


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
        render_config_check(config, offline, reports, strategies)
    if any(r.get("config_error") for r in reports):
        raise typer.Exit(2)
    if any(not r["ok"] for r in reports):
        raise typer.Exit(1)


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
