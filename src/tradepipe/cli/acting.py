"""The acting commands: send a signal, approve or reject a delivery, flatten, replay, move the
paper broker's mark. Each calls one verb of the Operator (engine/operator.py), through the
running daemon when there is one, else in-process under the journal lock (daemon/client.py)."""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from tradepipe.cli import (
    AccountOption,
    JsonOption,
    app,
    load,
    notify_app,
    paper_app,
    pick_strategy,
)
from tradepipe.cli.render import (
    markup,
    out,
    print_json,
    render_answer,
    render_deliveries,
    render_flattened,
    render_paper_chain,
    render_paper_quote,
    render_replay,
    render_review,
)
from tradepipe.core.model import DeliveryStatus


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


def _review(delivery_id: int, approve: bool, as_json: bool) -> None:
    from tradepipe.daemon.client import act

    result = act(load(), lambda operator: operator.review(delivery_id, approve))
    if as_json:
        print_json(result)
    else:
        render_review(delivery_id, result)
    if result["status"] == DeliveryStatus.FAILED:
        raise typer.Exit(1)


@app.command(epilog="Example: `tradepipe pending` then `tradepipe approve 7`")
def approve(delivery_id: int, as_json: JsonOption = False) -> None:
    """Approve a waiting delivery: it is planned again against the position now, then sent."""
    _review(delivery_id, True, as_json)


@app.command(epilog="Example: `tradepipe reject 7`")
def reject(delivery_id: int, as_json: JsonOption = False) -> None:
    """Reject a waiting delivery: nothing is sent."""
    _review(delivery_id, False, as_json)


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
    result = act(load(), lambda operator: operator.paper_quote(account, ticker, value))
    if as_json:
        print_json(result)
        return
    render_paper_quote(account, result)


@paper_app.command(
    "chain",
    epilog="Example: `tradepipe paper chain paper AAPL aapl-chain.csv` with a CSV like"
    " `expiration,right,strike` / `2026-12-18,call,200` (or JSON: a list of"
    ' {"expiration": "2026-12-18", "right": "put", "strike": 190})',
)
def paper_chain(
    account: str,
    underlying: str,
    file: Annotated[Path, typer.Argument(help="CSV or JSON: expiration, right, strike.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Give the paper account the option chain of UNDERLYING, in place of the one it generates
    around the mark (strikes around it, weekly and monthly expirations). Option signals for
    UNDERLYING then pick their contract from it; price a contract with `paper quote ACCOUNT
    OCC_SYMBOL PRICE`."""
    from tradepipe.daemon.client import act
    from tradepipe.errors import UsageError

    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the chain file {file}: {e}") from None
    result = act(load(), lambda operator: operator.paper_chain(account, underlying, text))
    if as_json:
        print_json(result)
        return
    render_paper_chain(account, result)


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
    result = act(config, lambda operator: operator.flatten(account, ticker))
    if as_json:
        print_json(result)
        return
    render_flattened(result)


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
    result = act(config, lambda operator: operator.replay(signal_id, execute))
    if execute:
        result["signal"] = wait_for_signal(config, result["signal_id"], timeout=30)
    if as_json:
        print_json(result)
        return
    render_replay(signal_id, result, execute)


@notify_app.command(
    "test", epilog="Examples: `tradepipe notify test`, `tradepipe notify test --json`"
)
def notify_test(as_json: JsonOption = False) -> None:
    """Send a test message to every [[notify]] target now and say, per target, whether it
    arrived and why not (through the running daemon when there is one). Exit 1 if any failed."""
    from tradepipe.daemon.client import notify_test as run_test
    from tradepipe.errors import UsageError

    config = load()
    if not config.notify:
        raise UsageError(f"{config.path}: no [[notify]] target to test (see config.example.toml)")
    result = run_test(config)
    if as_json:
        print_json(result)
    else:
        for target in result["targets"]:
            if target["ok"]:
                out.print(markup("[green]ok[/]     {}", target["target"]))
            else:
                out.print(markup("[red]failed[/] {}: {}", target["target"], target["error"]))
    if not all(target["ok"] for target in result["targets"]):
        raise typer.Exit(1)
