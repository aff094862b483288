"""End to end, as a user would: `tradepipe serve` as a subprocess, `tradepipe send`, listings."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from tests.helpers import (
    TOKEN,
    Daemon,
    free_port,
    tradepipe,
    tradepipe_json,
    wait_for,
    write_config,
)


def send(config, payload, *args):
    return json.loads(tradepipe(config, "send", json.dumps(payload), "--json", *args).stdout)


def test_entry_reversal_restart_and_exit_through_the_daemon(tmp_path):
    config = write_config(tmp_path)
    port = free_port()
    with Daemon(config, port):
        answer = send(
            config, {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 190}
        )
        assert answer["ok"] and not answer["duplicate"]
        positions = wait_for(lambda: tradepipe_json(config, "positions"))
        assert [(p["ticker"], p["quantity"], p["average_price"]) for p in positions] == [
            ("AAPL", 5, 190)
        ]

        answer = send(
            config,
            {"ticker": "AAPL", "action": "sell", "quantity": 2, "signalPrice": 200},
            "--wait",
        )
        assert answer["signal"]["deliveries"][0]["status"] == "submitted"
        assert tradepipe_json(config, "positions")[0]["quantity"] == -2

    # A restart keeps the paper position.
    with Daemon(config, port):
        assert tradepipe_json(config, "positions")[0]["quantity"] == -2
        answer = send(config, {"ticker": "AAPL", "action": "exit", "signalPrice": 195}, "--wait")
        assert answer["signal"]["status"] == "processed"
        assert tradepipe_json(config, "positions") == []

    orders = tradepipe_json(config, "orders")
    assert [(o["role"], o["side"], o["quantity"], o["status"]) for o in reversed(orders)] == [
        ("entry", "buy", 5, "filled"),
        ("exit", "sell", 5, "filled"),
        ("entry", "sell", 2, "filled"),
        ("exit", "buy", 2, "filled"),
    ]
    assert {len(o["client_order_id"]) <= 32 for o in orders} == {True}
    trades = tradepipe_json(config, "trades")
    assert sorted(t["price"] for t in trades) == [190, 195, 200, 200]
    signals = tradepipe_json(config, "signals")
    assert [s["status"] for s in signals] == ["processed"] * 3
    assert set(signals[0]) >= {
        "id",
        "strategy",
        "received_at",
        "ticker",
        "action",
        "status",
        "error",
        "deliveries",
    }
    assert set(signals[0]["deliveries"][0]) >= {"subscription", "status", "reason", "order_ids"}


def test_malformed_body_gets_400_listing_every_problem_and_shows_in_signals(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()) as daemon:
        request = urllib.request.Request(
            f"{daemon.url}/webhook/{TOKEN}",
            data=b'{"action": "hold", "quantity": -1}',
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("expected a 400")
        except urllib.error.HTTPError as e:
            assert e.code == 400
            answer = json.loads(e.read())
        assert {e["field"] for e in answer["errors"]} == {"ticker", "action", "quantity"}
        listed = tradepipe(config, "signals").stdout
        assert "rejected" in listed and "ticker" in listed
        shown = tradepipe(config, "signals", "show", str(answer["signal_id"])).stdout
        assert "quantity" in shown and "must be greater than 0" in shown


def test_send_without_a_daemon_runs_the_signal_itself(tmp_path):
    config = write_config(tmp_path)
    answer = send(
        config, {"ticker": "MSFT", "action": "sell", "quantity": 3, "signalPrice": 400}, "--wait"
    )
    assert answer["signal"]["deliveries"][0]["status"] == "submitted"
    assert tradepipe_json(config, "positions")[0]["quantity"] == -3


def test_send_reports_a_rejection_with_exit_code_1(tmp_path):
    config = write_config(tmp_path)
    result = tradepipe(config, "send", '{"ticker": "AAPL"}', check=False)
    assert result.returncode == 1
    assert "action" in result.stdout and "400" in result.stdout


def test_signals_show_explains_where_values_came_from(tmp_path):
    config = write_config(tmp_path, subscription="use_signal_quantity = false\nquantity = 2\n")
    tradepipe(
        config,
        "send",
        json.dumps({"ticker": "AAPL", "action": "buy", "quantity": 9, "signalPrice": 10}),
    )
    shown = tradepipe(config, "signals", "show", "1").stdout
    assert "quantity 2 ← subscription trend-paper" in shown
    assert "use_signal_quantity = false" in shown
    detail = json.loads(tradepipe(config, "signals", "show", "1", "--json").stdout)
    assert detail["deliveries"][0]["orders"][0]["quantity"] == 2


def test_paper_quote_moves_the_mark_used_by_the_next_market_order(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        assert "mark 123.5" in tradepipe(config, "paper", "quote", "paper", "TSLA", "123.5").stdout
        send(config, {"ticker": "TSLA", "action": "buy", "quantity": 1}, "--wait")
        assert tradepipe_json(config, "trades")[0]["price"] == 123.5
    # Without a daemon the command works on its own.
    tradepipe(config, "paper", "quote", "paper", "TSLA", "130")
    send(config, {"ticker": "TSLA", "action": "exit"}, "--wait")
    assert tradepipe_json(config, "trades")[0]["price"] == 130


def test_serve_without_a_config_writes_a_starter_and_prints_the_url(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    import subprocess
    import sys

    from tests.helpers import cli_env

    env = cli_env(home)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=home,
    )
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "try: tradepipe" in line:
            break
    process.terminate()
    output = "".join(lines) + process.communicate(timeout=20)[0]
    starter = home / ".config" / "tradepipe" / "tradepipe.toml"
    assert starter.exists() and oct(starter.stat().st_mode & 0o777) == "0o600"
    (url,) = re.findall(r"webhook for strategy main: (\S+)", output)
    assert url.startswith(f"http://127.0.0.1:{port}/webhook/")  # the port it really listens on
    assert "tradepipe send" in output
    assert process.returncode == 0
    check = tradepipe(None, "config", "check", home=home)
    assert "ok" in check.stdout


def test_config_errors_exit_2_without_a_traceback(tmp_path):
    config = write_config(tmp_path, subscription="quantiy = 3\n")
    result = tradepipe(config, "config", "check", check=False)
    assert result.returncode == 2
    assert "quantiy" in result.stderr and "quantity" in result.stderr
    assert "Traceback" not in result.stderr


def test_strategies_prints_the_url_and_a_tradingview_message(tmp_path):
    config = write_config(tmp_path)
    (row,) = tradepipe_json(config, "strategies")
    assert row["webhook_url"].endswith(f"/webhook/{TOKEN}")
    message = json.loads(row["tradingview_message"])
    assert message["ticker"] == "{{ticker}}" and message["action"] == "{{strategy.order.action}}"


def test_usage_errors_exit_2(tmp_path):
    config = write_config(tmp_path)
    assert tradepipe(config, "positions", "--bogus", check=False).returncode == 2
    assert tradepipe(config, "signals", "show", "abc", check=False).returncode == 2
    result = tradepipe(config, "paper", "quote", "paper", "AAPL", "Infinity", check=False)
    assert result.returncode == 2 and "greater than 0" in result.stderr
    missing = tradepipe(config, "send", "-f", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_a_ticker_typed_on_the_command_line_obeys_the_webhook_rule(tmp_path):
    """SPEC §12: what the webhook refuses, `paper quote` and `flatten --ticker` refuse too."""
    config = write_config(tmp_path)
    for command, problem in [
        (("paper", "quote", "paper", "AAPL\nINFO forged", "100"), '"\\n" (U+000A) at position 5'),
        (("flatten", "--yes", "--ticker", "AAPL\u202e"), '"\\u202e" (U+202E) at position 5'),
        (("flatten", "--yes", "--ticker", "A" * 65), "at most 64 characters (got 65)"),
    ]:
        result = tradepipe(config, *command, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert "ticker" in result.stderr and problem in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_stale_daemon_file_does_not_block_acting_commands(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "journal.db.daemon.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "token": "x", "pid": 1})
    )
    answer = send(config, {"ticker": "AAPL", "action": "buy", "signalPrice": 5}, "--wait")
    assert answer["signal"]["deliveries"][0]["status"] == "submitted"


def test_errors_never_show_the_webhook_token(tmp_path):
    from tests.helpers import TOKEN

    config = write_config(tmp_path, strategy="")
    # A daemon that holds the lock but does not answer: the error names the address only.
    import fcntl

    lock = (tmp_path / "journal.db.lock").open("a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    (tmp_path / "journal.db.daemon.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{free_port()}", "token": "x", "pid": 1})
    )
    try:
        result = tradepipe(config, "send", '{"ticker":"AAPL","action":"buy"}', check=False)
    finally:
        lock.close()
    assert result.returncode == 1 and "no daemon answered" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_manual_approval_through_the_daemon(tmp_path):
    config = write_config(tmp_path, subscription="auto_submit = false\n")
    with Daemon(config, free_port()):
        answer = send(
            config, {"ticker": "AAPL", "action": "buy", "quantity": 3, "signalPrice": 50}, "--wait"
        )
        assert answer["signal"]["deliveries"][0]["status"] == "pending_approval"
        (waiting,) = tradepipe_json(config, "pending")
        assert waiting["plan"] == "enter long 3 (buy 3 AAPL)"
        assert tradepipe_json(config, "positions") == []
        approved = json.loads(tradepipe(config, "approve", str(waiting["id"]), "--json").stdout)
        assert approved["status"] == "submitted" and approved["changed"] is False
        assert tradepipe_json(config, "positions")[0]["quantity"] == 3
        again = tradepipe(config, "approve", str(waiting["id"]), check=False)
        assert again.returncode == 1 and "not waiting for approval" in again.stderr
    # Without a daemon: reject works on its own.
    send(config, {"ticker": "AAPL", "action": "exit", "signalPrice": 50})
    (waiting,) = tradepipe_json(config, "pending")
    assert "rejected" in tradepipe(config, "reject", str(waiting["id"])).stdout
    assert tradepipe_json(config, "pending") == []


def test_bracket_take_profit_fills_after_paper_quote_and_the_stop_is_canceled(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        send(
            config,
            {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": 4,
                "signalPrice": 200,
                "takeProfit": {"amount": 10},
                "stopLoss": {"type": "stop", "percent": 5},
            },
            "--wait",
        )
        orders = {o["role"]: o for o in tradepipe_json(config, "orders")}
        assert (orders["take_profit"]["limit_price"], orders["stop_loss"]["stop_price"]) == (
            210,
            190,
        )
        between = tradepipe(config, "paper", "quote", "paper", "AAPL", "205").stdout
        assert "(no order filled or canceled)" in between
        assert tradepipe_json(config, "positions")[0]["quantity"] == 4
        moved = tradepipe_json(config, "paper", "quote", "paper", "AAPL", "212")
        # The take-profit filled; its stop was canceled, not filled (it said "filled" for both).
        assert moved["filled"] == [orders["take_profit"]["client_order_id"]]
        assert moved["canceled"] == [orders["stop_loss"]["client_order_id"]]
        assert moved["rejected"] == []
        orders = {o["role"]: o for o in tradepipe_json(config, "orders")}
        assert orders["take_profit"]["status"] == "filled"
        assert orders["stop_loss"]["status"] == "canceled"
        assert tradepipe_json(config, "positions") == []
        assert sorted(t["price"] for t in tradepipe_json(config, "trades")) == [
            200,
            210,
        ]  # a resting limit fills at its limit, not the jump


def test_paper_quote_says_which_orders_filled_and_which_were_canceled(tmp_path):
    config = write_config(tmp_path)  # no daemon: the command runs on its own
    bracket = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": 4,
        "signalPrice": 200,
        "takeProfit": {"amount": 10},
        "stopLoss": {"type": "stop", "percent": 5},
    }
    send(config, bracket, "--wait")
    orders = {o["role"]: o["client_order_id"] for o in tradepipe_json(config, "orders")}
    text = tradepipe(config, "paper", "quote", "paper", "AAPL", "189").stdout
    assert f"filled: {orders['stop_loss']}; canceled: {orders['take_profit']}" in text


@pytest.mark.parametrize("price", ["0", "-1", "nan", "inf", "1e-30", "0.00001", "abc"])
def test_paper_quote_refuses_a_mark_that_is_no_price(tmp_path, price):
    config = write_config(tmp_path)
    # (`--`: else click reads "-1" as an option)
    result = tradepipe(config, "paper", "quote", "--", "paper", "AAPL", price, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"price '{price}'" in result.stderr
    why = "below one tick (0.0001)" if price in ("1e-30", "0.00001") else "greater than 0"
    assert why in result.stderr


def test_send_signs_requests_for_a_strategy_with_a_webhook_secret(tmp_path):
    import base64

    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    config = write_config(tmp_path, strategy=f'webhook_secret = "{secret}"\n')
    with Daemon(config, free_port()):
        answer = send(config, {"ticker": "AAPL", "action": "buy", "signalPrice": 5}, "--wait")
        assert answer["ok"] and answer["signal"]["deliveries"][0]["status"] == "submitted"


def test_serve_on_a_busy_port_says_so_and_leaves_the_journal_free(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, port=port)
        result = tradepipe(config, "serve", check=False, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    # The engine it started was stopped and the lock released: a standalone command runs.
    sent = tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","signalPrice":5}')
    assert sent.returncode == 0


def test_send_to_a_daemon_that_does_not_answer_says_the_outcome_is_unknown(tmp_path):
    import socket

    with socket.socket() as silent:  # takes the request, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = write_config(tmp_path, port=silent.getsockname()[1])
        result = tradepipe(config, "send", '{"ticker":"AAPL","action":"buy"}', check=False)
    assert result.returncode == 1
    assert "it may have been accepted; check `tradepipe signals`" in result.stderr
    assert not (tmp_path / "journal.db").exists()  # not sent a second time on its own


def test_later_starts_log_the_webhook_masked_and_no_scheduler_chatter(tmp_path):
    # Under systemd this output is journald's: the token is the webhook's only secret.
    config = write_config(tmp_path)
    daemon = Daemon(config, free_port()).start()
    time.sleep(2.5)  # apscheduler logged two INFO lines a second
    output = daemon.stop()
    assert TOKEN not in output
    assert f"webhook for strategy trend: {daemon.url}/webhook/{TOKEN[:3]}…(hidden)" in output
    assert "full webhook URLs: tradepipe strategies" in output
    assert "apscheduler" not in output, output


def test_status_without_a_daemon_says_so_and_exits_1(tmp_path):
    config = write_config(tmp_path)
    tradepipe(config, "send", '{"ticker":"AAPL","action":"buy","quantity":1,"signalPrice":10}')
    text = tradepipe(config, "status", check=False)
    assert text.returncode == 1, text.stderr
    assert "daemon  not running" in text.stdout
    assert "account paper (paper): not checked" in text.stdout  # what the journal can say
    answer = tradepipe(config, "status", "--json", check=False)
    assert answer.returncode == 1
    assert json.loads(answer.stdout)["daemon"]["running"] is False
