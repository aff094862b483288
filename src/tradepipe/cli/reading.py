"""The reading commands: the signal log, orders, trades, positions, approvals waiting, the audit
trail and the daemon's status. They read the journal (through journal/views.py) and render."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tradepipe.cli import (
    AccountOption,
    CsvOption,
    JsonOption,
    SinceOption,
    TickerOption,
    app,
    audit_app,
    limit_option,
    load,
    moment,
    one_format,
    open_journal,
    signals_app,
)
from tradepipe.cli.render import (
    emit,
    err,
    markup,
    out,
    print_json,
    render_signal_detail,
    say_if_cut_short,
    status_cell,
    styled,
    when,
)
from tradepipe.cli.render_health import render_status
from tradepipe.core.model import DeliveryStatus, SignalStatus

FollowOption = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-f",
        help="Print new signals and each change of their outcome as they happen (Ctrl-C ends);"
        " with --json one JSON object a line.",
    ),
]


@signals_app.callback(
    invoke_without_command=True,
    epilog="Examples: `tradepipe signals --status rejected`, `tradepipe signals --csv > s.csv`,"
    " `tradepipe signals --follow`",
)
def signals(
    ctx: typer.Context,
    limit: Annotated[int, limit_option(50)] = 50,
    status: Annotated[SignalStatus | None, typer.Option(help="Only this status.")] = None,
    since: SinceOption = None,
    follow: FollowOption = False,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """The signal log with each subscription's outcome. `tradepipe signals show ID` drills down."""
    if ctx.invoked_subcommand is not None:
        return
    from tradepipe.journal.views import newest, signal_views

    one_format(as_json, as_csv)
    journal = open_journal(load())
    if follow:
        from tradepipe.cli.follow import follow_signals
        from tradepipe.errors import UsageError

        if as_csv:
            raise UsageError("--follow prints lines or JSON lines (--json), not --csv")
        if status is not None or since is not None:
            raise UsageError("--follow prints every new signal: --status and --since do not apply")
        follow_signals(journal, as_json=as_json, interval=0.5)
        return
    found, total = newest(
        journal,
        "signals",
        limit=limit,
        status=status and status.value,
        since=moment(since, "--since"),
    )
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
            when(r["received_at"]),
            r["strategy"],
            r["ticker"],
            r["action"],
            status_cell(r["status"]),
            outcome(r),
        ),
        as_csv,
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
    render_signal_detail(detail)


@app.command(
    epilog="Examples: `tradepipe orders --ticker AAPL --since 7d`,"
    " `tradepipe orders --limit 1000 --csv > orders.csv`"
)
def orders(
    account: AccountOption = None,
    ticker: TickerOption = None,
    since: SinceOption = None,
    limit: Annotated[int, limit_option(200)] = 200,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Orders tradepipe sent, newest first (a notice on stderr when --limit cuts the list)."""
    from tradepipe.journal.views import newest, order_view

    one_format(as_json, as_csv)
    journal = open_journal(load())
    found, total = newest(
        journal,
        "orders",
        limit=limit,
        account=account,
        ticker=ticker,
        since=moment(since, "--since"),
    )
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
            status_cell(r["status"]),
        ),
        as_csv,
    )


@app.command(
    epilog="Examples: `tradepipe trades --account paper --since 2026-12-01`,"
    " `tradepipe trades --limit 5000 --csv > fills.csv`"
)
def trades(
    account: AccountOption = None,
    ticker: TickerOption = None,
    since: SinceOption = None,
    limit: Annotated[int, limit_option(200)] = 200,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Fills, newest first (a notice on stderr when --limit cuts the list). Round trips and
    P&L: `tradepipe report`."""
    from tradepipe.journal.views import newest, trade_view

    one_format(as_json, as_csv)
    journal = open_journal(load())
    found, total = newest(
        journal,
        "fills",
        limit=limit,
        account=account,
        ticker=ticker,
        since=moment(since, "--since"),
    )
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
            when(r["filled_at"]),
        ),
        as_csv,
    )


@app.command()
def positions(
    account: AccountOption = None, as_json: JsonOption = False, as_csv: CsvOption = False
) -> None:
    """Open positions per account (signed: short < 0)."""
    from tradepipe.journal.views import position_view

    one_format(as_json, as_csv)
    rows = [position_view(r) for r in open_journal(load()).positions(account=account)]

    def signed(quantity: Any) -> Any:
        return styled(quantity, "green" if quantity > 0 else "red")

    emit(
        rows,
        as_json,
        "positions",
        ("account", "ticker", "quantity", "average price"),
        lambda r: (r["account"], r["ticker"], signed(r["quantity"]), r["average_price"]),
        as_csv,
    )


@app.command()
def pending(as_json: JsonOption = False, as_csv: CsvOption = False) -> None:
    """Deliveries waiting for `tradepipe approve` (subscriptions with auto_submit = false)."""
    from tradepipe.journal.views import pending_view

    one_format(as_json, as_csv)
    journal = open_journal(load())
    waiting = journal.deliveries_with_status(DeliveryStatus.PENDING_APPROVAL)
    rows = [pending_view(d) for d in waiting]
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
            when(r["created_at"]),
        ),
        as_csv,
    )


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
    render_status(report)
    if not daemon["running"]:
        raise typer.Exit(1)


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest last.")] = 50,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """What happened, in order: signals, plans, orders, fills and operator actions."""
    if ctx.invoked_subcommand is not None:
        return
    one_format(as_json, as_csv)
    from tradepipe.journal.views import newest_events

    journal = open_journal(load())
    rows, total = newest_events(journal, limit)
    say_if_cut_short(len(rows), total, "audit events")
    columns = ("id", "at", "kind", "subject", "detail")

    def cells(row: dict[str, Any]) -> tuple[Any, ...]:
        detail = ", ".join(f"{k} {v}" for k, v in row["detail"].items())
        return row["id"], when(row["at"]), row["kind"], row["subject"], detail

    emit(rows, as_json, "audit events", columns, cells, as_csv)


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
