"""SPEC §14 end to end: a journal built by real `tradepipe serve` + `tradepipe send` runs on the
paper broker, then `tradepipe report` and the listings' --csv, --since and --limit read back
through the CLI as subprocesses; `signals --follow` prints a signal sent while it runs."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.helpers import Daemon, cli_env, free_port, tradepipe, write_config

WIDE = {"COLUMNS": "200"}


def send(config, payload: dict) -> dict:
    answer = tradepipe(config, "send", json.dumps(payload), "--json", "--wait")
    return json.loads(answer.stdout)


def report(config, *args: str) -> dict:
    return json.loads(tradepipe(config, "report", *args, "--json").stdout)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    """One subscription's trades, hand-computed (× multiplier, FIFO):
    AAPL long 10 @100, exit 4 @105 (+20), exit the rest 6 @95 (−30);
    MSFT short 5 @50, covered @40 (+50); ESZ2026 long 2 @5000, out @5010.25 (+1,025: ×50);
    TSLA a buy stop at 101 (signal 100) triggered by a mark of 103: 3 filled 3 worse (slippage
    +9, +300 bps), then marked 110 (unrealized +21); NFLX a buy limit at 99 (signal 100), the
    mark passes 98: filled at its limit, 1 better (−2, −100 bps), unrealized (98 − 99) × 2.
    The daemon is stopped before the tests: the report reads the journal on its own."""
    directory = tmp_path_factory.mktemp("report")
    config = write_config(directory)
    config.write_text(config.read_text().replace("cash = 100000\n", "cash = 10000000\n"))
    sent = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    with Daemon(config, free_port()):
        signals = [
            {"ticker": "AAPL", "action": "buy", "quantity": 10, "signalPrice": 100, "time": sent},
            {"ticker": "AAPL", "action": "exit", "quantity": 4, "signalPrice": 105},
            {"ticker": "AAPL", "action": "exit", "signalPrice": 95},
            {"ticker": "MSFT", "action": "sell", "quantity": 5, "signalPrice": 50},
            {"ticker": "MSFT", "action": "exit", "signalPrice": 40},
            {"ticker": "ESZ2026", "action": "buy", "quantity": 2, "signalPrice": 5000},
            {"ticker": "ESZ2026", "action": "exit", "signalPrice": 5010.25},
            {"ticker": "TSLA", "action": "buy", "quantity": 3, "signalPrice": 100,
             "orderType": "stop", "stopPrice": 101},
            {"ticker": "NFLX", "action": "buy", "quantity": 2, "signalPrice": 100,
             "orderType": "limit", "limitPrice": 99},
        ]  # fmt: skip
        for payload in signals:
            (delivery,) = send(config, payload)["signal"]["deliveries"]
            assert delivery["status"] == "submitted", delivery
        for ticker, price in (("TSLA", "103"), ("TSLA", "110"), ("NFLX", "98")):
            tradepipe(config, "paper", "quote", "paper", ticker, price)
    return config


def test_report_figures_are_the_hand_computed_ones(journal):
    got = report(journal)
    total = got["total"]
    # Closing order: +20, −30, +50, +1,025 → curve 20, −10, 40, 1,065: drawdown 20 → −10 = 30.
    assert [p["realized"] for p in got["curve"]] == [20, -10, 40, 1065]
    assert (total["trades"], total["wins"], total["losses"]) == (4, 3, 1)
    assert (total["realized"], total["win_rate"], total["max_drawdown"]) == (1065, 0.75, 30)
    assert (total["profit_factor"], total["average_win"], total["average_loss"]) == (36.5, 365, -30)
    assert total["unrealized"] == 21 - 2
    assert total["open_quantity"] == 5
    assert [g["group"] for g in got["groups"]] == ["trend-paper"]
    assert got["max_drawdown_of"].startswith("realized equity curve")
    trips = [(t["ticker"], t["direction"], t["quantity"], t["multiplier"], t["net"])
             for t in got["round_trips"]]  # fmt: skip
    assert trips == [
        ("AAPL", "long", 4, 1, 20),
        ("AAPL", "long", 6, 1, -30),
        ("MSFT", "short", 5, 1, 50),
        ("ESZ2026", "long", 2, 50, 1025),
    ]
    assert {(m["ticker"], m["price"], m["source"]) for m in got["marks"]} == {
        ("TSLA", 110, "paper mark"),
        ("NFLX", 98, "paper mark"),
    }
    assert got["fees"]["unreported_fills"] == 9  # paper reports no fee


def test_report_by_ticker_and_execution_quality(journal):
    got = report(journal, "--by", "ticker")
    by = {g["group"]: g for g in got["groups"]}
    assert set(by) == {"AAPL", "MSFT", "ESZ2026", "TSLA", "NFLX"}
    assert (by["AAPL"]["trades"], by["AAPL"]["realized"], by["AAPL"]["max_drawdown"]) == (
        2,
        -10,
        30,
    )
    assert (by["ESZ2026"]["realized"], by["TSLA"]["unrealized"]) == (1025, 21)
    slipped = {(e["ticker"], e["slippage"], e["slippage_bps"]) for e in got["executions"]
               if e["slippage"]}  # fmt: skip
    assert slipped == {("TSLA", 9, 300), ("NFLX", -2, -100)}
    execution = got["execution"]
    assert execution["slippage_total"] == 7
    assert execution["slippage_bps"]["count"] == 9
    alert = execution["alert_latency_seconds"]
    assert alert["count"] == 1 and 1.5 < alert["p50"] < 60  # sent 2 s before it was posted
    for key in ("submit_latency_seconds", "fill_latency_seconds"):
        assert execution[key]["count"] == 9
        assert 0 <= execution[key]["p50"] <= execution[key]["p95"] < 30


def test_report_window_and_csv(journal):
    assert report(journal, "--since", "2099-01-01")["total"]["trades"] == 0
    assert report(journal, "--until", "2000-01-01")["round_trips"] == []
    assert report(journal, "--since", "1h")["total"]["trades"] == 4
    for by, group in (("strategy", "trend"), ("account", "paper")):
        (only,) = report(journal, "--by", by)["groups"]
        assert (only["group"], only["trades"], only["realized"]) == (group, 4, 1065)
    figures = rows_of(tradepipe(journal, "report", "--csv").stdout)
    assert [(r["group"], r["trades"], r["realized"]) for r in figures] == [
        ("trend-paper", "4", "1065"),
        ("total", "4", "1065"),
    ]
    trips = rows_of(tradepipe(journal, "report", "--trips", "--csv").stdout)
    assert [Decimal(t["net"]) for t in trips] == [20, -30, 50, 1025]


def test_report_for_people_has_the_table_the_curve_and_the_notes(journal):
    shown = tradepipe(journal, "report", env=WIDE).stdout
    assert "performance by subscription" in shown and "trend-paper" in shown
    assert "1,065.00" in shown and "36.50" in shown
    assert "realized equity curve" in shown and "█" in shown
    assert "slippage vs signalPrice (9 fills; + = worse): total 7.00" in shown
    assert "9 fills without a fee" in shown
    trips = tradepipe(journal, "report", "--trips", env=WIDE).stdout
    assert "ESZ2026" in trips and "1,025.00" in trips


def test_report_refuses_two_formats_and_a_moment_it_cannot_read(journal):
    both = tradepipe(journal, "report", "--json", "--csv", check=False)
    assert both.returncode == 2 and "give one of them" in both.stderr
    wrong = tradepipe(journal, "report", "--since", "last tuesday", check=False)
    assert wrong.returncode == 2
    assert '--since: "last tuesday" is not a moment' in " ".join(wrong.stderr.split())


def as_cell(value: object) -> str:
    """A JSON value as --csv writes it: nothing for null, JSON for a list or an object."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


@pytest.mark.parametrize(
    "command", ["signals", "orders", "trades", "positions", "audit", "strategies"]
)
def test_every_listing_prints_csv_with_the_json_keys_and_values(journal, command):
    as_json = json.loads(tradepipe(journal, command, "--json").stdout)
    rows = rows_of(tradepipe(journal, command, "--csv").stdout)
    assert len(rows) == len(as_json) > 0
    assert list(rows[0]) == list(as_json[0])
    assert rows == [{k: as_cell(v) for k, v in row.items()} for row in as_json]


def test_orders_and_trades_filter_and_say_when_cut_short(journal):
    fills = rows_of(tradepipe(journal, "trades", "--csv").stdout)
    assert len(fills) == 9
    assert {(f["fee"], f["fee_currency"]) for f in fills} == {("", "")}  # paper reports none
    cut = tradepipe(journal, "trades", "--limit", "3", "--csv")
    assert len(rows_of(cut.stdout)) == 3
    assert "showing 3 of 9 trades; use --limit N for more" in cut.stderr
    whole = tradepipe(journal, "trades", "--limit", "9", "--csv")
    assert whole.stderr == ""
    aapl = rows_of(tradepipe(journal, "orders", "--ticker", "aapl", "--csv").stdout)
    assert [(o["side"], o["quantity"]) for o in aapl] == [
        ("sell", "6"),
        ("sell", "4"),
        ("buy", "10"),
    ]
    assert rows_of(tradepipe(journal, "orders", "--account", "nobody", "--csv").stdout) == []
    assert json.loads(tradepipe(journal, "trades", "--since", "2099-01-01", "--json").stdout) == []
    recent = json.loads(tradepipe(journal, "orders", "--since", "1h", "--json").stdout)
    assert len(recent) == 9


def follow(config, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`tradepipe signals --follow` running, once it says which signal it follows after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "--config", str(config), "signals", "--follow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(config.parent) | (env or {}),
    )
    # A follower that never prints must fail the test, not hang it: killed, its stdout ends.
    watchdog = threading.Timer(60, process.kill)
    watchdog.daemon = True
    watchdog.start()
    assert process.stderr is not None
    assert "following signals after" in process.stderr.readline()
    return process


def interrupt(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C: its exit code and what it said on stderr after."""
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)  # (CI's four workers share two cores)
    except subprocess.TimeoutExpired:
        process.kill()  # not left running after the test
        process.communicate()
        raise
    return process.returncode, stderr


def test_signals_follow_prints_a_signal_sent_while_it_runs(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        send(config, {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 100})
        with follow(config, "--json") as follower:
            try:
                send(config, {"ticker": "MSFT", "action": "buy", "quantity": 2, "signalPrice": 50})
                assert follower.stdout is not None
                lines = [json.loads(follower.stdout.readline())]
                while lines[-1]["status"] != "processed":  # then each change of its outcome
                    lines.append(json.loads(follower.stdout.readline()))
                # The report reads the journal while the daemon runs.
                assert report(config)["total"]["open_quantity"] == 3
            finally:
                code, stderr = interrupt(follower)
    assert {line["id"] for line in lines} == {2}  # the signal before it is not repeated
    assert lines[-1]["ticker"] == "MSFT"
    assert lines[-1]["deliveries"][0]["status"] == "submitted"
    assert (code, stderr) == (0, "")


def test_signals_follow_for_people_prints_a_line_per_outcome(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()), follow(config, env=WIDE) as follower:
        try:
            send(config, {"ticker": "AAPL", "action": "exit", "signalPrice": 100})
            assert follower.stdout is not None
            line = follower.stdout.readline()
            while "rejected" not in line:
                line = follower.stdout.readline()
        finally:
            code, _ = interrupt(follower)
    assert "AAPL exit" in line and "trend-paper: rejected" in line
    assert code == 0


def test_signals_follow_ends_at_ctrl_c_even_when_started_with_sigint_ignored(tmp_path):
    """A parent that ignores SIGINT passes that on (a shell's background job, a supervisor):
    the follower must still end at Ctrl-C, not run on forever."""
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            follower = follow(config, "--json")
        finally:
            signal.signal(signal.SIGINT, previous)
        code, stderr = interrupt(follower)
    assert code == 0, stderr
