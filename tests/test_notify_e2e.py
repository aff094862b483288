"""Notifications end to end (SPEC §14): the real `tradepipe serve`, real Apprise, and a local
HTTP receiver standing in for the service (`json://127.0.0.1:PORT/hook`)."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

from tests.helpers import (
    TOKEN,
    Daemon,
    deliver,
    free_port,
    on_disk,
    tradepipe,
    wait_for,
    write_config,
)
from tests.notify_receiver import SECRET_PATH, Receiver, notify_table


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def signal_body(**fields: object) -> bytes:
    return json.dumps({"ticker": "AAPL", "action": "buy", "quantity": 5, **fields}).encode()


def rows(journal, sql: str, *params: object) -> list[tuple]:
    return on_disk(journal, sql, *params)


def test_a_rejected_webhook_is_told_with_its_reason_and_the_row_is_marked_sent(tmp_path):
    with Receiver() as receiver:
        config = write_config(tmp_path, extra=notify_table(receiver))
        daemon = Daemon(config, free_port()).start()
        try:
            status, _ = post(f"{daemon.url}/webhook/{TOKEN}", b'{"ticker": "AAPL",')
            assert status == 400
            (message,) = receiver.wait(1)
            journal = tmp_path / "journal.db"
            wait_for(
                lambda: rows(journal, "SELECT status FROM notifications") == [("sent",)],
                what="the row marked sent",
            )
        finally:
            log = daemon.stop()
    assert daemon.process is not None and daemon.process.returncode == 0, log  # SIGTERM: clean
    assert f"notification 1 sent to notify[0] json://127.0.0.1:{receiver.port}" in log
    # The target's URL is a secret: not in the log, not in the journal's outbox.
    assert SECRET_PATH not in log
    assert SECRET_PATH.encode() not in journal.read_bytes()
    assert message["title"] == "tradepipe: failure: signal 1"
    assert message["type"] == "failure"
    assert message["message"].startswith(
        'strategy "trend": signal 1 rejected at the webhook (400 malformed-json): body: invalid'
    )


def test_a_rejected_delivery_and_an_approval_each_reach_the_target_the_approval_with_its_command(
    tmp_path,
):
    with Receiver() as receiver:
        config = write_config(
            tmp_path, subscription="auto_submit = false\n", extra=notify_table(receiver)
        )
        with Daemon(config, free_port()) as daemon:
            # Whole shares only: 0.4 rounds to 0, a rejected delivery (no approval asked).
            post(f"{daemon.url}/webhook/{TOKEN}", signal_body(quantity=0.4, signalPrice=100))
            (rejected,) = receiver.wait(1)
            post(f"{daemon.url}/webhook/{TOKEN}", signal_body(signalPrice=100))
            # Another kind: not held back by the failure sent a moment ago.
            approval = receiver.wait(2)[1]
    assert rejected["title"] == "tradepipe: failure: delivery 1"
    assert rejected["message"] == (
        "delivery 1 trend-paper AAPL (signal 1) rejected: entry quantity: quantity 0.4 rounds"
        " to 0 whole units (fractional trading is off)"
    )
    assert approval["title"] == "tradepipe: waiting for approval: delivery 2"
    assert "Approve: tradepipe approve 2 · reject: tradepipe reject 2" in approval["message"]
    assert approval["message"].startswith(
        "delivery 2 trend-paper AAPL (signal 2) waits for approval: enter long 5"
    )


def test_a_target_takes_only_its_kinds(tmp_path):
    with Receiver() as failures, Receiver() as approvals:
        extra = notify_table(failures, events=["failure"]) + notify_table(
            approvals, events=["approval"]
        )
        config = write_config(tmp_path, subscription="auto_submit = false\n", extra=extra)
        with Daemon(config, free_port()) as daemon:
            post(f"{daemon.url}/webhook/{TOKEN}", b"not json")
            post(f"{daemon.url}/webhook/{TOKEN}", signal_body(signalPrice=100))
            (failure,) = failures.wait(1)
            (approval,) = approvals.wait(1)
            time.sleep(0.5)
    assert failure["type"] == "failure" and approval["title"].startswith("tradepipe: waiting")
    assert (len(failures.messages), len(approvals.messages)) == (1, 1)
    # One row per target that takes the kind, none for the other.
    assert rows(
        tmp_path / "journal.db", "SELECT kind, count(*) FROM notifications GROUP BY kind"
    ) == [
        ("approval", 1),
        ("failure", 1),
    ]


def test_notify_test_reports_each_target_directly_and_through_the_daemon(tmp_path):
    closed = f"json://127.0.0.1:{free_port()}/nobody"  # nothing listens there
    with Receiver() as receiver:
        extra = notify_table(receiver) + f'\n[[notify]]\nurl = "{closed}"\n'
        config = write_config(tmp_path, extra=extra)
        direct = tradepipe(config, "notify", "test", "--json", check=False)
        assert direct.returncode == 1, direct.stderr
        answer = json.loads(direct.stdout)
        assert answer["through"] == "direct"
        good, bad = answer["targets"]
        assert good == {
            "target": f"notify[0] json://127.0.0.1:{receiver.port}",
            "ok": True,
            "error": None,
        }
        assert bad["ok"] is False and bad["target"].startswith("notify[1] json://127.0.0.1:")
        assert "Connection error" in bad["error"]
        assert receiver.wait(1)[0]["title"] == "tradepipe: test"
        with Daemon(config, free_port()):
            shown = tradepipe(config, "notify", "test", check=False)
            assert (
                json.loads(tradepipe(config, "notify", "test", "--json", check=False).stdout)[
                    "through"
                ]
                == "daemon"
            )
        assert shown.returncode == 1
        assert "ok     notify[0] json://127.0.0.1:" in shown.stdout
        assert "failed notify[1] json://127.0.0.1:" in shown.stdout
        assert len(receiver.wait(3)) == 3
    assert SECRET_PATH not in direct.stdout + direct.stderr + shown.stdout + shown.stderr


def test_notify_test_without_a_target_is_a_usage_error(tmp_path):
    result = tradepipe(write_config(tmp_path), "notify", "test", check=False)
    assert result.returncode == 2
    assert "no [[notify]] target to test" in result.stderr


def test_a_crash_between_the_cause_and_the_send_tells_it_after_the_restart_once(tmp_path):
    with Receiver() as receiver:
        config = write_config(tmp_path, extra=notify_table(receiver))
        journal = tmp_path / "journal.db"
        port = free_port()
        daemon = Daemon(config, port, env={"TRADEPIPE_DRILL_PAUSE_AT": "notify"}).start()
        try:
            status, _ = post(f"{daemon.url}/webhook/{TOKEN}", b"{oops")
            assert status == 400
            # The cause and its notification are on disk together; the sender is paused.
            wait_for(
                lambda: rows(journal, "SELECT status FROM notifications") == [("pending",)],
                what="the notification journaled",
            )
            assert rows(journal, "SELECT status FROM signals") == [("rejected",)]
        finally:
            daemon.stop(signal.SIGKILL)
        assert receiver.messages == []
        with Daemon(config, port):
            (message,) = receiver.wait(1)
            wait_for(
                lambda: rows(journal, "SELECT status FROM notifications") == [("sent",)],
                what="the row marked sent",
            )
            time.sleep(0.5)
        assert message["title"] == "tradepipe: failure: signal 1"
        assert len(receiver.messages) == 1  # at least once, and here exactly once


def test_a_target_that_never_answers_delays_no_acknowledgement(tmp_path):
    unlimited = "rate_limit_per_minute = 1000000\nrate_limit_per_hour = 1000000\n"
    with Receiver(hang=True) as receiver:
        config = write_config(
            tmp_path,
            strategy=unlimited,
            subscription="auto_submit = false\n",
            extra=notify_table(receiver),
        )
        with Daemon(config, free_port()) as daemon:
            took = []
            for i in range(20):
                # Every one of them is a notification: rejected ones, and deliveries that wait.
                body = signal_body(signalPrice=100, id=f"s{i}") if i % 2 else b"{broken"
                started = time.monotonic()
                post(f"{daemon.url}/webhook/{TOKEN}", body)
                took.append(time.monotonic() - started)
            wait_for(lambda: receiver.requests >= 1, what="the sender stuck at the target")
    assert max(took) < 0.5, took
    assert receiver.messages == []


def test_a_burst_of_one_kind_sends_the_first_at_once_and_holds_the_rest_for_one_message(tmp_path):
    with Receiver() as receiver:
        config = write_config(tmp_path, extra=notify_table(receiver))
        journal = tmp_path / "journal.db"
        with Daemon(config, free_port()) as daemon:
            post(f"{daemon.url}/webhook/{TOKEN}", b"{first")
            receiver.wait(1)
            for i in range(4):
                post(f"{daemon.url}/webhook/{TOKEN}", f"{{rest {i}".encode())
            wait_for(
                lambda: rows(journal, "SELECT count(*) FROM notifications") == [(5,)],
                what="5 rows",
            )
            time.sleep(1.0)
            # Within the minute after the first: nothing more sent, the four wait together.
            assert len(receiver.messages) == 1
            assert rows(journal, "SELECT status, count(*) FROM notifications GROUP BY 1") == [
                ("pending", 4),
                ("sent", 1),
            ]


def test_silence_alert_tells_once_and_the_next_signal_rearms_it(tmp_path):
    with Receiver() as receiver:
        config = write_config(
            tmp_path,
            strategy="silence_alert = 1\n",
            extra=notify_table(receiver, events=["silence"]),
        )
        with Daemon(config, free_port()) as daemon:
            (first,) = receiver.wait(1, timeout=10)
            time.sleep(2.5)  # still silent: no second message
            assert len(receiver.messages) == 1
            silences = "SELECT count(*) FROM notifications WHERE kind = 'silence'"
            journal = tmp_path / "journal.db"
            assert rows(journal, silences) == [(1,)]
            post(f"{daemon.url}/webhook/{TOKEN}", signal_body(signalPrice=100))
            # Heard: re-armed; silent for a second again, a second notification is journaled
            # (and sent once the minute of the first one's kind is over).
            wait_for(lambda: rows(journal, silences) == [(2,)], what="the second silence")
    assert first["title"] == "tradepipe: silence: strategy trend"
    assert first["type"] == "warning"
    assert first["message"].startswith('strategy "trend" received no signal for 1 s')


def test_a_risk_trip_reaches_the_target_and_a_halt_and_resume_are_journaled_for_it(tmp_path):
    with Receiver() as receiver:
        config = write_config(
            tmp_path,
            account="[accounts.paper.risk]\nmax_orders_per_minute = 1\n",
            extra=notify_table(receiver, events=["risk"]),
        )
        journal = tmp_path / "journal.db"
        with Daemon(config, free_port()):
            assert deliver(config, json.loads(signal_body(signalPrice=100)))["status"] == (
                "submitted"
            )
            second = deliver(config, json.loads(signal_body(ticker="MSFT", signalPrice=50)))
            assert second["status"] == "rejected"
            (trip,) = receiver.wait(1)
            tradepipe(config, "halt", "--reason", "fomc")
            tradepipe(config, "resume")
            # Held for one merged message at the end of the minute: journaled now.
            wait_for(
                lambda: len(rows(journal, "SELECT id FROM notifications")) == 3,
                what="the halt and the resume in the outbox",
            )
            told = rows(journal, "SELECT kind, text FROM notifications ORDER BY id")
    assert trip["title"] == 'tradepipe: risk: account "paper"'
    assert trip["type"] == "warning"
    assert trip["message"] == (
        'account "paper" is reduce_only: max_orders_per_minute 1: 1 orders were sent in the'
        " last minute"
    )
    assert told[1:] == [
        ("risk", "everything is halted: operator: fomc"),
        ("risk", "everything is active again: tradepipe resume"),
    ]


def test_a_halt_without_a_daemon_is_told_when_the_daemon_starts(tmp_path):
    with Receiver() as receiver:
        config = write_config(tmp_path, extra=notify_table(receiver, events=["risk"]))
        tradepipe(config, "halt", "--account", "paper", "--reason", "broker maintenance")
        assert receiver.messages == []
        with Daemon(config, free_port()):
            (message,) = receiver.wait(1)
    assert message["message"] == 'account "paper" is halted: operator: broker maintenance'
