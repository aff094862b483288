"""A consistent copy of the journal while the daemon keeps writing: SQLite's online backup.

The copy is taken page by page inside read transactions (the daemon is never blocked for
long), written beside the target and renamed into place only after an integrity check, so a
crash or a full disk never leaves a half-written file under the name you asked for.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from tradepipe.errors import JournalError, UsageError

PAGES_PER_STEP = 1024


def backup_journal(source: Path, target: Path, *, force: bool = False) -> dict[str, Any]:
    """Copy the journal at `source` to `target`; answers what was copied."""
    if not source.exists():
        raise JournalError(f"no journal at {source}: nothing to back up")
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to replace it")
    if target.resolve() == source.resolve():
        raise UsageError(f"{target} is the journal itself; back up to another path")
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        # The copy holds what the journal holds: 0600 from the start, as the journal is.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with (
            contextlib.closing(sqlite3.connect(source, timeout=10)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst, pages=PAGES_PER_STEP)
            # The copy is a standalone file: no -wal beside it to lose.
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise JournalError(f"the copy failed its integrity check: {check}")
            counts = {
                table: dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("signals", "orders", "fills")
            }
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise JournalError(f"backup of {source} to {target} failed: {e}") from e
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {
        "journal": str(source),
        "backup": str(target),
        "bytes": target.stat().st_size,
        "seconds": round(time.monotonic() - started, 3),
        **counts,
    }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
