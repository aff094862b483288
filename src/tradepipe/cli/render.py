"""Data on the terminal: every value the CLI prints from the journal, a broker or the config goes
through here, so that markup in it (`[/]`, `[bold]`) is shown as text and control characters
(newlines, ESC sequences, bidi overrides) are shown as visible escapes instead of acting.

The CLI writes its own styling as rich markup in a template and passes data as arguments:
`markup("[bold]{}[/] → {}", name, status)` escapes the arguments, never the template. Table
cells go through `cell`, which makes a `Text` (never parsed as markup). The `render_*` functions
show one command's answer; the commands only fetch it.
"""

from __future__ import annotations

import csv
import json
import string
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    pass

# Characters that move the cursor, start a terminal escape sequence or reorder the text around
# them: C0/C1 controls and DEL, the Unicode bidi embeddings, overrides, isolates and marks, and
# the line and paragraph separators.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_VISIBLE = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x20), *range(0x7F, 0xA0), *map(ord, _BIDI)]
}


def printable(value: Any) -> str:
    """`value` as text whose every character shows as itself: controls become `\\n`, `\\x1b`,
    `\\u202e`…; markup is left alone (for `Text`, which does not parse it)."""
    return "" if value is None else str(value).translate(_VISIBLE)


def data(value: Any) -> str:
    """`value` ready to sit inside rich markup: printable, and its brackets escaped."""
    return escape(printable(value))


class _DataFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return data(format(value, format_spec))


_FORMATTER = _DataFormatter()

# soft_wrap: a webhook URL or a JSON example must stay on one line to be copied.
# emoji=False: a ":name:" in data stays text. Data reaches markup only through this module.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def markup(template: str, /, *args: Any, **kwargs: Any) -> str:
    """`template.format(*args, **kwargs)` with every argument escaped by `data`: the template's
    markup styles, the arguments are only ever shown."""
    return _FORMATTER.format(template, *args, **kwargs)


def styled(value: Any, style: str) -> Text:
    """A value in a style (a status in its colour, a signed quantity), for a table cell."""
    return Text(printable(value), style=style)


def coloured(value: Any, style: str) -> str:
    """A value in a style, as markup to put in a template's text (`markup` would escape it)."""
    return f"[{style}]{data(value)}[/]"


def cell(value: Any) -> Text:
    """A table cell: `Text` passes as it is, None is empty, anything else is shown as text."""
    return value if isinstance(value, Text) else Text(printable(value))


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
    "delayed": "cyan",
    "pending": "cyan",
    "done": "green",
    "missed": "red",
    "canceled": "yellow",
    "unknown": "red",
}


def print_json(value: Any) -> None:
    """What --json prints: plain, indented JSON on stdout, the same on a terminal or a pipe."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def emit(
    rows: list[dict[str, Any]],
    as_json: bool,
    title: str,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], tuple[Any, ...]],
    as_csv: bool = False,
) -> None:
    """A listing: one JSON array with --json, CSV with --csv (the JSON's keys as its header),
    else a table of `cells(row)` under `columns`."""
    if as_json:
        print_json(rows)
        return
    if as_csv:
        print_csv(rows)
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


def print_csv(rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """What --csv prints: a header of the JSON keys, then one line a row; a list or an object
    in a cell (a signal's deliveries) is its JSON. Nothing at all for no rows and no fields."""
    fields = fields or (list(rows[0]) if rows else [])
    if not fields:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
        )


def say_if_cut_short(shown: int, total: int, what: str) -> None:
    """On stderr, never inside --json's stdout: a listing that does not show every row."""
    if shown < total:
        err.print(f"showing {shown:,} of {total:,} {what}; use --limit N for more")


def status_cell(status: str) -> Any:
    """A status in its colour, for a table cell."""
    return styled(status, STATUS_COLOURS.get(status, "white"))


def coloured_status(status: str) -> str:
    """A status in its colour, as markup for a line of text."""
    return coloured(status, STATUS_COLOURS.get(status, "white"))


def when(iso: str) -> str:
    """A journal timestamp as a table shows it: 11-20 15:00:03 (UTC)."""
    return iso[5:19].replace("T", " ")


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
            + coloured_status(delivery["status"])
            + markup(" — {}", delivery["reason"])
        )


def render_signal_detail(detail: dict[str, Any]) -> None:
    """`signals show`: payload, errors, and per subscription the plan, its provenance, orders."""
    d = detail
    out.print(
        markup("[bold]signal {}[/] · strategy {} · {}", d["id"], d["strategy"], d["received_at"])
        + markup(" · from {} · ", d["source"])
        + coloured_status(d["status"])
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
            + coloured_status(delivery["status"])
            + markup(" — {}", delivery["reason"])
        )
        plan = delivery["plan"]
        if plan and plan.get("kind") == "plan":
            out.print(markup("  plan: {}", plan["summary"]))
        for fact in (plan or {}).get("facts", ()):  # the contract chosen and why (SPEC §15)
            out.print(markup("  [cyan]instrument:[/] {}", fact))
        for line in delivery["provenance"]:
            out.print(markup("    {}", line))
        for o in delivery["orders"]:
            price = o["average_fill_price"]
            out.print(
                markup("  order {} {}: {} {}", o["id"], o["client_order_id"], o["role"], o["side"])
                + markup(" {}", o["quantity"])
                + (markup(" {}", o["ticker"]) if o.get("ticker") not in (None, d["ticker"]) else "")
                + markup(" {} → {}", o["order_type"], o["status"])
                + (markup(" at {}", price) if price is not None else "")
                + (markup(" — broker: {}", o["broker_message"]) if o["broker_message"] else "")
            )
        for item in delivery.get("schedules", []):
            what = f" order {item['client_order_id']}" if item["client_order_id"] else ""
            out.print(
                markup("  scheduled {}{} at {}: ", item["kind"], what, item["due_at"])
                + coloured_status(item["status"])
                + (markup(" — {}", item["reason"]) if item["reason"] else "")
            )


def render_review(delivery_id: int, result: dict[str, Any]) -> None:
    """`approve` / `reject`: the delivery's status now, and how its plan changed."""
    out.print(
        markup("delivery {}: ", delivery_id)
        + coloured_status(result["status"])
        + markup(" — {}", result["reason"])
    )
    if result.get("changed"):
        changed = "  [yellow]the plan changed[/] since the signal: {}"
        out.print(markup(changed, result["plan_at_signal"]))
        out.print(markup("  → now: {}", result["plan_now"]))


def render_paper_quote(account: str, result: dict[str, Any]) -> None:
    moved = [
        f"{what}: {', '.join(result.get(what, []))}"
        for what in ("filled", "canceled", "rejected")
        if result.get(what)
    ]
    done = "[green]ok[/] {} {} mark {} ({})"
    summary = "; ".join(moved) if moved else "no order filled or canceled"
    out.print(markup(done, account, result["ticker"], result["price"], summary))


def render_paper_chain(account: str, result: dict[str, Any]) -> None:
    expirations, strikes = result["expirations"], result["strikes"]
    out.print(
        markup(
            "[green]ok[/] {} {}: {} contracts, expirations {}–{}, strikes {}–{}",
            account,
            result["underlying"],
            result["contracts"],
            expirations[0],
            expirations[-1],
            strikes[0],
            strikes[-1],
        )
    )


def render_flattened(result: dict[str, Any]) -> None:
    if not result["flattened"]:
        out.print("[dim]nothing open: no positions, no open orders[/]")
    for item in result["flattened"]:
        closed = item["closed"]
        what = (
            markup("{} {} → ", closed["side"], closed["quantity"])
            + coloured_status(closed["status"])
            + (markup(" ({})", closed["message"]) if closed["message"] else "")
            if closed
            else "no position"
        )
        canceled = len(item["canceled"])
        head = markup("{} {}: {} orders canceled; ", item["account"], item["ticker"], canceled)
        out.print(head + what)
        for left in item.get("left_working", []):  # the broker would not cancel it
            out.print(markup("  [yellow]left working[/]: {}", left))


def render_replay(signal_id: int, result: dict[str, Any], execute: bool) -> None:
    if not execute:
        out.print(f"signal {signal_id} now ([dim]dry run: nothing sent[/]):")
        for plan in result["plans"]:
            what = plan.get("summary") or plan.get("reason")
            shown = markup("  {}: ", plan["subscription"]) + coloured_status(plan["kind"])
            out.print(shown + markup(" {}", what))
        return
    out.print(f"[green]replayed[/] signal {signal_id} as signal {result['signal_id']}")
    render_deliveries(result["signal"])
