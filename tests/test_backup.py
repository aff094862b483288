"""`tradepipe backup`: a consistent, checked copy of the journal, also while the daemon writes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import urllib.request

from tests.helpers import TOKEN, Daemon, free_port, tradepipe, write_config


def post(url: str, payload: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_backup_while_the_daemon_takes_signals_is_a_consistent_journal(tmp_path):
    unlimited = "rate_limit_per_minute = 1000000\nrate_limit_per_hour = 1000000\n"
    config = write_config(tmp_path, strategy=unlimited)
    daemon = Daemon(config, free_port())
    with daemon:
        webhook = f"{daemon.url}/webhook/{TOKEN}"
        for i in range(20):
            post(webhook, {"ticker": "AAPL", "action": "buy", "signalPrice": 10, "id": f"a{i}"})
        stop = threading.Event()

        def keep_posting() -> None:
            i = 0
            while not stop.is_set():
                post(webhook, {"ticker": "MSFT", "action": "buy", "signalPrice": 5, "id": f"b{i}"})
                i += 1

        writer = threading.Thread(target=keep_posting)
        writer.start()
        try:
            answer = json.loads(
                tradepipe(config, "backup", str(tmp_path / "copy.db"), "--json").stdout
            )
        finally:
            stop.set()
            writer.join()
    assert answer["signals"] >= 20 and answer["bytes"] > 0
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert copy.execute("SELECT count(*) FROM signals").fetchone()[0] == answer["signals"]
    assert not (tmp_path / "copy.db.partial").exists()


def test_backup_refuses_to_overwrite_without_force_and_names_the_file(tmp_path):
    config = write_config(tmp_path)
    tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","signalPrice":10}')
    target = tmp_path / "copy.db"
    target.write_text("precious")
    refused = tradepipe(config, "backup", str(target), check=False)
    assert refused.returncode == 2 and f"{target} exists; pass --force" in refused.stderr
    assert target.read_text() == "precious"
    done = tradepipe(config, "backup", str(target), "--force")
    assert "1 signals, 1 orders, 1 fills" in done.stdout


def test_backup_onto_the_journal_itself_is_refused(tmp_path):
    config = write_config(tmp_path)
    tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","signalPrice":10}')
    result = tradepipe(config, "backup", str(tmp_path / "journal.db"), "--force", check=False)
    assert result.returncode == 2 and "is the journal itself" in result.stderr


def test_the_backup_is_readable_by_the_owner_only(tmp_path):
    config = write_config(tmp_path)
    tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","signalPrice":10}')
    old = os.umask(0o022)  # a login shell's, inherited by the subprocess
    try:
        tradepipe(config, "backup", str(tmp_path / "copy.db"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600
