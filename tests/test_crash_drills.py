"""Crash drills (SPEC §3, §8, §11): `kill -9` on the real `tradepipe serve` at each step of a
signal's life, then a restart. Every acknowledged signal must be processed, and the broker must
hold exactly one order per leg — never a second one, never none.

The daemon is stopped at a step by TRADEPIPE_DRILL_PAUSE_AT (tradepipe.engine.drill), the journal is
watched until it shows that step, and then the process gets a real SIGKILL.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import TOKEN, Daemon, free_port, on_disk, wait_for, write_config

UNLIMITED = "rate_limit_per_minute = 1000000\nrate_limit_per_hour = 1000000\n"


query = on_disk  # the journal as committed, read-only


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def kill_9(daemon: Daemon) -> None:
    daemon.stop(signal.SIGKILL)
    assert daemon.process is not None and daemon.process.returncode == -signal.SIGKILL


MARKET = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100, "id": "s1"}
BRACKET = {**MARKET, "takeProfit": {"percent": 10}, "stopLoss": {"percent": 5}}

# What the journal shows once the daemon has reached the step it pauses at.
REACHED = {
    "dispatch": ("SELECT count(*) FROM signals WHERE status = 'accepted'", 1),
    "submit": ("SELECT count(*) FROM orders WHERE status = 'submitting' AND parent_id IS NULL", 1),
    "answer": ("SELECT count(*) FROM paper_orders WHERE parent IS NULL", 1),
}


@pytest.mark.parametrize("point", ["dispatch", "submit", "answer"])
@pytest.mark.parametrize(
    ("payload", "legs"), [(MARKET, 1), (BRACKET, 3)], ids=["market", "bracket"]
)
def test_kill_9_at_each_step_then_restart_settles_with_one_order_per_leg(
    tmp_path, point, payload, legs
):
    config = write_config(tmp_path)
    journal = tmp_path / "journal.db"
    port = free_port()
    daemon = Daemon(config, port, env={"TRADEPIPE_DRILL_PAUSE_AT": point}).start()
    try:
        answer = post(f"{daemon.url}/webhook/{TOKEN}", payload)
        assert answer["ok"]  # acknowledged: from here on it must not be lost
        sql, expected = REACHED[point]
        wait_for(lambda: query(journal, sql)[0][0] == expected, what=f"step {point}")
        if point == "dispatch":
            time.sleep(0.2)
            assert query(journal, "SELECT count(*) FROM deliveries") == [(0,)]
    finally:
        kill_9(daemon)

    with Daemon(config, port):
        wait_for(
            lambda: query(journal, "SELECT status FROM signals") == [("processed",)],
            what="the signal processed after the restart",
        )
    assert query(journal, "SELECT status FROM deliveries") == [("submitted",)]
    orders = query(journal, "SELECT client_order_id, role, status FROM orders ORDER BY id")
    assert len(orders) == legs
    entry = [o for o in orders if o[1] == "entry"]
    assert [o[2] for o in entry] == ["filled"]
    # The broker's side: exactly one order per leg, one fill for the entry, long 5.
    at_broker = query(journal, "SELECT client_order_id FROM paper_orders ORDER BY rowid")
    assert sorted(c for (c,) in at_broker) == sorted(o[0] for o in orders)
    assert query(journal, "SELECT count(*) FROM paper_fills") == [(1,)]
    assert query(journal, "SELECT quantity FROM paper_positions") == [("5",)]
    assert query(journal, "SELECT quantity FROM positions") == [("5",)]


def test_burst_of_four_senders_killed_mid_burst_processes_every_acknowledged_signal_once(
    tmp_path,
):
    config = write_config(
        tmp_path,
        strategy=UNLIMITED,
        subscription="allow_add = true\n",
        # A burst of hundreds of orders a minute: the runaway-alert guard (default 60) would
        # trip the account and reject the entries this drill counts.
        account="[accounts.paper.risk]\nmax_orders_per_minute = 1000000\n",
    )
    journal = tmp_path / "journal.db"
    port = free_port()
    daemon = Daemon(config, port).start()
    webhook = f"{daemon.url}/webhook/{TOKEN}"
    acknowledged: list[int] = []
    lock = threading.Lock()

    def sender(name: str) -> None:
        for i in range(10_000):
            payload = {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 10}
            try:
                answer = post(webhook, payload | {"id": f"{name}-{i}"})
            except (urllib.error.URLError, ConnectionError, OSError):
                return  # the daemon died under us: this one was never acknowledged
            with lock:
                acknowledged.append(answer["signal_id"])

    senders = [threading.Thread(target=sender, args=(f"t{n}",)) for n in range(4)]
    for thread in senders:
        thread.start()
    wait_for(lambda: len(acknowledged) >= 150, timeout=60, what="150 acknowledged signals")
    kill_9(daemon)
    for thread in senders:
        thread.join(timeout=20)
    acked = set(acknowledged)
    assert len(acked) >= 100

    with Daemon(config, port):
        wait_for(
            lambda: (
                query(journal, "SELECT count(*) FROM signals WHERE status != 'processed'") == [(0,)]
            ),
            timeout=60,
            what="every journaled signal processed",
        )
    processed = {s for (s,) in query(journal, "SELECT id FROM signals")}
    assert acked <= processed  # nothing acknowledged was lost
    # Exactly once: one entry order, one broker order and one fill per signal, no more.
    per_signal = query(
        journal, "SELECT signal_id, count(*) FROM orders GROUP BY signal_id HAVING count(*) != 1"
    )
    assert per_signal == []
    assert query(journal, "SELECT count(*) FROM orders") == [(len(processed),)]
    assert query(journal, "SELECT count(*) FROM paper_orders") == [(len(processed),)]
    assert query(journal, "SELECT count(*) FROM paper_fills") == [(len(processed),)]
    assert query(journal, "SELECT quantity FROM paper_positions") == [(str(len(processed)),)]


def test_sigterm_with_work_in_flight_exits_0_and_the_restart_settles_it(tmp_path):
    config = write_config(tmp_path, extra="")
    text = config.read_text().replace("[journal]", "shutdown_grace = 0.5\n\n[journal]", 1)
    config.write_text(text)
    journal = tmp_path / "journal.db"
    port = free_port()
    daemon = Daemon(config, port, env={"TRADEPIPE_DRILL_PAUSE_AT": "submit"}).start()
    post(f"{daemon.url}/webhook/{TOKEN}", MARKET)
    sql, expected = REACHED["submit"]
    wait_for(lambda: query(journal, sql)[0][0] == expected, what="the order journaled")
    output = daemon.stop(signal.SIGTERM)  # the step never finishes: the grace runs out
    assert daemon.process is not None and daemon.process.returncode == 0, output
    with Daemon(config, port):
        wait_for(
            lambda: query(journal, "SELECT status FROM signals") == [("processed",)],
            what="the signal processed after the restart",
        )
    assert query(journal, "SELECT status FROM orders") == [("filled",)]
    assert query(journal, "SELECT count(*) FROM paper_orders") == [(1,)]


def test_an_order_the_crash_left_unanswered_is_not_mistaken_for_drift_at_restart(tmp_path):
    """Found by the burst drill: start-time reconciliation saw the broker's fill of an order
    whose answer the crash lost as a position difference, and blocked the signals behind it."""
    config = write_config(tmp_path, subscription="allow_add = true\n")
    journal = tmp_path / "journal.db"
    port = free_port()
    daemon = Daemon(config, port, env={"TRADEPIPE_DRILL_PAUSE_AT": "answer"}).start()
    try:
        post(f"{daemon.url}/webhook/{TOKEN}", MARKET)
        sql, expected = REACHED["answer"]
        wait_for(lambda: query(journal, sql)[0][0] == expected, what="the broker's fill")
        post(f"{daemon.url}/webhook/{TOKEN}", {**MARKET, "id": "s2", "quantity": 1})
    finally:
        kill_9(daemon)
    with Daemon(config, port):
        wait_for(
            lambda: (
                query(journal, "SELECT count(*) FROM signals WHERE status = 'processed'") == [(2,)]
            ),
            what="both signals processed",
        )
    assert query(journal, "SELECT status FROM deliveries ORDER BY id") == [
        ("submitted",),
        ("submitted",),
    ]
    assert query(journal, "SELECT quantity FROM paper_positions") == [("6",)]
    drift = "SELECT count(*) FROM events WHERE kind = 'reconciliation'"
    assert query(journal, drift) == [(0,)]


def test_a_commit_that_fails_stops_the_daemon_with_nothing_acknowledged_then_it_starts_clean(
    tmp_path,
):
    """A commit fails as on a full disk (a deferred foreign key, planted by another connection,
    is only checked at COMMIT): the signal whose commit failed gets a 503, never a 200; the
    daemon stops with status 1 for systemd to restart it; the restart finds only what was
    committed and trades the next signal."""
    config = write_config(tmp_path, strategy=UNLIMITED)
    journal = tmp_path / "journal.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook/{TOKEN}"
    daemon = Daemon(config, port).start()
    try:
        assert post(url, {**MARKET, "id": "before"})["ok"] is True
        wait_for(
            lambda: (
                query(journal, "SELECT count(*) FROM signals WHERE status = 'processed'") == [(1,)]
            ),
            what="the first signal processed",
        )
        with sqlite3.connect(journal) as other:
            other.executescript(
                """
                CREATE TABLE doomed_parent (id INTEGER PRIMARY KEY);
                CREATE TABLE doomed (
                    parent INTEGER REFERENCES doomed_parent(id) DEFERRABLE INITIALLY DEFERRED
                );
                CREATE TRIGGER doom AFTER INSERT ON signals
                    BEGIN INSERT INTO doomed (parent) VALUES (-1); END;
                """
            )
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, {**MARKET, "id": "doomed"})
        assert refused.value.code == 503
        assert "FOREIGN KEY constraint failed" in json.loads(refused.value.read())["message"]
        assert daemon.process is not None
        daemon.process.wait(timeout=20)
        output = daemon.stop()
        assert daemon.process.returncode == 1, output
        assert "lost its uncommitted writes" in output
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            kill_9(daemon)
    assert query(journal, "SELECT dedupe_key, status FROM signals") == [("before", "processed")]
    with sqlite3.connect(journal) as other:
        other.executescript("DROP TRIGGER doom; DROP TABLE doomed; DROP TABLE doomed_parent;")
    with Daemon(config, port):
        assert post(url, {**MARKET, "action": "exit", "id": "after"})["ok"] is True
        wait_for(
            lambda: query(journal, "SELECT count(*) FROM orders WHERE status = 'filled'") == [(2,)],
            what="the signal after the restart traded",
        )


def test_a_sighup_while_stopping_is_ignored_and_the_drain_still_exits_0(tmp_path):
    # Removing the SIGHUP handler at the stop restored its default: `systemctl reload` during
    # the drain killed the process mid-delivery
    config = write_config(tmp_path, extra="")
    text = config.read_text().replace("[journal]", "shutdown_grace = 2\n\n[journal]", 1)
    config.write_text(text)
    journal = tmp_path / "journal.db"
    daemon = Daemon(config, free_port(), env={"TRADEPIPE_DRILL_PAUSE_AT": "submit"}).start()
    post(f"{daemon.url}/webhook/{TOKEN}", MARKET)
    sql, expected = REACHED["submit"]
    wait_for(lambda: query(journal, sql)[0][0] == expected, what="the order journaled")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the drain has begun: SIGTERM's handler runs at once on the loop
    daemon.process.send_signal(signal.SIGHUP)
    output = daemon.stop(signal.SIGTERM)
    assert daemon.process.returncode == 0, output
    assert "SIGHUP while stopping: ignored" in output
