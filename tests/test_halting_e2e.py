"""`tradepipe halt` / `resume` end to end (SPEC §13): a real `tradepipe serve` subprocess and
the CLI as subprocesses, the paper broker behind them. Through the daemon (its in-memory states
change at once), across a restart, and on the journal alone when no daemon runs."""

from __future__ import annotations

import json
import urllib.request

from tests.helpers import Daemon, deliver, free_port, held, tradepipe, write_config

BUY = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}


def halt_json(config, *args: str) -> dict:
    return json.loads(tradepipe(config, "halt", *args, "--json").stdout)


def states(config) -> list[dict]:
    """The trading states `tradepipe status --json` shows (exit 1 without a daemon)."""
    report = json.loads(tradepipe(config, "status", "--json", check=False).stdout)
    return [(s["scope"], s["name"], s["state"], s["reason"]) for s in report["trading_states"]]


def healthz(daemon: Daemon) -> tuple[int, dict]:
    with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as response:
        return response.status, json.loads(response.read())


def test_an_operator_halt_rejects_a_buy_and_resume_lets_the_next_fill(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()) as daemon:
        answer = halt_json(config, "--account", "paper", "--reason", "broker maintenance")
        assert (answer["scope"], answer["name"], answer["state"], answer["source"]) == (
            "account",
            "paper",
            "halted",
            "operator",
        )
        rejected = deliver(config, BUY)
        assert (rejected["status"], rejected["reason"]) == (
            "rejected",
            'account "paper" is halted (operator: broker maintenance): an entry is rejected;'
            " only an operator's flatten goes through",
        )
        assert states(config) == [("account", "paper", "halted", "operator: broker maintenance")]
        status, health = healthz(daemon)
        assert (status, health["status"]) == (200, "ready")  # shown, not unhealthy
        assert [s["state"] for s in health["trading_states"]] == ["halted"]
        shown = tradepipe(config, "status").stdout
        assert 'halted account "paper": operator: broker maintenance' in shown
        resumed = json.loads(tradepipe(config, "resume", "--account", "paper", "--json").stdout)
        assert (resumed["resumed"], resumed["trading_states"]) == (True, [])
        filled = deliver(config, BUY | {"id": "again"})
        assert (filled["status"], filled["reason"]) == ("submitted", "enter long 5 (buy 5 AAPL)")
        assert held(config) == 5
        assert states(config) == []
        assert "trading active everywhere" in tradepipe(config, "status").stdout
        audit = json.loads(tradepipe(config, "audit", "--json").stdout)
        assert [e["detail"].get("action") for e in audit if e["kind"] == "operator"] == [
            "halt",
            "resume",
        ]


def test_reduce_only_passes_an_exit_and_cuts_a_reversal_to_its_exit(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        deliver(config, BUY)
        tradepipe(config, "halt", "--reduce-only", "--reason", "FOMC at 14:00")
        assert deliver(config, BUY | {"ticker": "MSFT", "id": "m"})["reason"] == (
            "everything is reduce_only (operator: FOMC at 14:00): an entry is rejected; exits,"
            " cancels and flatten go through"
        )
        partial = {"ticker": "AAPL", "action": "sell", "sentiment": "long", "quantity": 2}
        assert deliver(config, partial)["status"] == "submitted"
        assert held(config) == 3
        reversal = deliver(config, {"ticker": "AAPL", "action": "sell", "quantity": 8})
        assert reversal["status"] == "submitted"
        assert reversal["reason"] == (
            "exit long 3, wait for the fill, then sell 8; everything is reduce_only (operator:"
            " FOMC at 14:00): the reversal's entry is rejected; exits, cancels and flatten go"
            " through"
        )
        assert [o["role"] for o in reversal["plan"]["orders"]] == ["exit"]  # the exit only
        assert held(config) == 0


def test_a_halt_survives_a_restart_and_flatten_still_closes_the_position(tmp_path):
    config = write_config(tmp_path)
    port = free_port()
    with Daemon(config, port):
        deliver(config, BUY)
        tradepipe(config, "halt", "--reason", "going on holiday")
    with Daemon(config, port):
        assert states(config) == [("everything", None, "halted", "operator: going on holiday")]
        exit_ = deliver(config, {"ticker": "AAPL", "action": "exit"})
        assert (exit_["status"], exit_["reason"]) == (
            "rejected",
            "everything is halted (operator: going on holiday): an exit is rejected; only an"
            " operator's flatten goes through",
        )
        assert held(config) == 5
        flattened = json.loads(tradepipe(config, "flatten", "--yes", "--json").stdout)
        ((item,),) = [flattened["flattened"]]
        assert (item["ticker"], item["closed"]["status"]) == ("AAPL", "filled")
        assert held(config) == 0
        assert len(states(config)) == 1  # flatten does not resume


def test_halt_and_resume_without_a_daemon_then_serve_starts_halted(tmp_path):
    config = write_config(tmp_path)
    answer = halt_json(config, "--strategy", "trend", "--reduce-only", "--reason", "review")
    assert (answer["scope"], answer["name"], answer["state"]) == (
        "strategy",
        "trend",
        "reduce_only",
    )
    resumed = json.loads(tradepipe(config, "resume", "--json").stdout)  # everything: not set
    assert resumed["resumed"] is False
    assert [s["scope"] for s in resumed["trading_states"]] == ["strategy"]
    tradepipe(config, "halt", "--subscription", "trend-paper", "--reason", "script bug")
    assert states(config) == [
        ("strategy", "trend", "reduce_only", "operator: review"),
        ("subscription", "trend-paper", "halted", "operator: script bug"),
    ]
    tradepipe(config, "resume", "--subscription", "trend-paper")  # standalone too
    with Daemon(config, free_port()):
        rejected = deliver(config, BUY)
        assert rejected["reason"].startswith('strategy "trend" is reduce_only (operator: review)')
        tradepipe(config, "resume", "--strategy", "trend")
        assert deliver(config, BUY | {"id": "again"})["status"] == "submitted"
    assert states(config) == []


def test_a_scope_the_config_does_not_have_is_a_usage_error(tmp_path):
    config = write_config(tmp_path)
    result = tradepipe(config, "halt", "--account", "live", "--reason", "x", check=False)
    assert result.returncode == 2
    assert 'no account "live" in the config (accounts: paper)' in result.stderr
    both = tradepipe(config, "resume", "--account", "paper", "--strategy", "trend", check=False)
    assert both.returncode == 2
    assert "one scope at a time: --account paper and --strategy trend given" in both.stderr
    assert tradepipe(config, "halt", check=False).returncode == 2  # --reason is required
