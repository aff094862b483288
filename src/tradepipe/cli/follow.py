"""`tradepipe signals --follow`: new signals and their outcomes as they happen, like `tail -f`.

It polls the journal read-only (WAL lets it read while the daemon writes): a signal is printed
when it arrives, and again each time its outcome changes, until it is settled (its deliveries
are final and none waits for approval). Ctrl-C ends it with exit 0.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from tradepipe.cli.render import coloured_status, err, markup, out, when
from tradepipe.core.model import FINISHED_SIGNAL, DeliveryStatus, SignalStatus

if TYPE_CHECKING:
    from tradepipe.journal import Journal

# Signals still watched for a change of outcome, at most: the oldest are let go beyond it.
_WATCHED = 1000


def follow_signals(journal: Journal, *, as_json: bool, interval: float) -> None:
    """Print every signal journaled from now on (a line, or a JSON object a line with --json),
    then each change of its outcome; until Ctrl-C."""
    from tradepipe.journal.views import signal_views

    # Ctrl-C ends it even when started with SIGINT ignored (a parent may pass that on, and
    # Python then installs no KeyboardInterrupt of its own): it would otherwise never end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    printed: dict[int, Any] = {}  # signal id → the outcome last printed, while it may change
    try:  # (from here on: Ctrl-C right after the first line ends it as well as later)
        newest = journal.conn.execute("SELECT coalesce(max(id), 0) FROM signals").fetchone()[0]
        err.print(f"following signals after {newest} (Ctrl-C ends)")
        while True:
            watched = sorted(printed)[-_WATCHED:]
            rows = [
                dict(r)
                for r in journal.conn.execute(
                    f"SELECT * FROM signals WHERE id > ? OR id IN ({', '.join('?' * len(watched))})"
                    " ORDER BY id LIMIT 500",
                    [newest, *watched],
                )
            ]
            for view in signal_views(journal, rows):
                outcome = _outcome(view)
                if printed.get(view["id"]) != outcome:
                    _print(view, as_json)
                printed[view["id"]] = outcome
                if _settled(view):
                    del printed[view["id"]]
                newest = max(newest, view["id"])
            while len(printed) > _WATCHED:
                del printed[min(printed)]
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _outcome(view: dict[str, Any]) -> Any:
    return (
        view["status"],
        view["error"],
        tuple(
            (d["subscription"], d["status"], d["reason"], tuple(d["order_ids"]))
            for d in view["deliveries"]
        ),
    )


def _settled(view: dict[str, Any]) -> bool:
    status = SignalStatus(view["status"])
    if status is SignalStatus.DUPLICATE or status is SignalStatus.REJECTED:
        return True
    deliveries = [DeliveryStatus(d["status"]) for d in view["deliveries"]]
    return status in FINISHED_SIGNAL and all(
        d.is_final and d is not DeliveryStatus.PENDING_APPROVAL for d in deliveries
    )


def _print(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(view) + "\n")
        sys.stdout.flush()
        return
    head = markup(
        "{} {} {} {} {} ",
        when(view["received_at"]),
        view["id"],
        view["strategy"],
        view["ticker"],
        view["action"],
    )
    line = head + coloured_status(view["status"])
    if view["error"]:
        line += markup(" — {}", view["error"])
    for d in view["deliveries"]:
        line += markup("; {}: ", d["subscription"]) + coloured_status(d["status"])
        if d["reason"]:
            line += markup(" ({})", d["reason"])
    out.print(line)
    sys.stdout.flush()
