"""The command line a user expects (SPEC §10): global options after the command too, --version,
flags that read as flags, a listing that says when it was cut short, a typo'd --config that is
an error and not a new config."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from tests.helpers import cli_env, free_port, tradepipe, tradepipe_json, write_config
from tests.test_docs import command_paths
from tradepipe import __version__
from tradepipe.cli import app


def bare(home, *args, env=None):
    """`tradepipe ARGS` with no --config in front."""
    return subprocess.run(
        [sys.executable, "-m", "tradepipe", *args],
        capture_output=True,
        text=True,
        env=cli_env(home) | (env or {}),
        cwd=home,
        timeout=60,
    )


def test_every_command_takes_config_and_debug_after_its_name():
    root = typer.main.get_command(app)
    missing = []
    for path in command_paths(root):
        command = root
        for name in path:
            command = command.commands[name]
        options = {opt for parameter in command.params for opt in parameter.opts}
        wanted = ("--config", "-c", "--debug")
        missing += [f"{' '.join(path)} {o}" for o in wanted if o not in options]
    assert missing == []


def test_config_after_the_command_is_the_config_used(tmp_path):
    config = write_config(tmp_path)
    tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "buy", "signalPrice": 5}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = bare(elsewhere, "positions", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [p["ticker"] for p in json.loads(listed.stdout)] == ["AAPL"]
    shown = bare(elsewhere, "signals", "show", "1", "-c", str(config), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == 1, shown.stderr
    # After the command, it wins over the one before it.
    other = bare(elsewhere, "--config", "nope.toml", "orders", "--config", str(config))
    assert other.returncode == 0, other.stderr


def test_serve_takes_config_after_the_command(tmp_path):
    config = write_config(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(tmp_path / "nowhere"),
        cwd=tmp_path,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "listening on" in line or "error" in line:
                break
        assert f"127.0.0.1:{port}" in "".join(lines), "".join(lines)
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert not (tmp_path / "nowhere" / ".config").exists()  # no starter config was written


def test_a_config_path_that_does_not_exist_is_an_error_not_a_new_config(tmp_path):
    for args in (["serve", "--config", "nope.toml"], ["--config", "nope.toml", "serve"]):
        result = bare(tmp_path, *args)
        assert result.returncode == 2, result.stderr
        assert str(tmp_path / "nope.toml") in result.stderr and "does not exist" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "nope.toml").exists()
    from_env = bare(tmp_path, "serve", env={"TRADEPIPE_CONFIG": "typo.toml"})
    assert from_env.returncode == 2 and "TRADEPIPE_CONFIG" in from_env.stderr
    assert not (tmp_path / "typo.toml").exists()
    listing = bare(tmp_path, "orders", "--config", "nope.toml")
    assert listing.returncode == 2 and "from --config" in listing.stderr


def test_version(tmp_path):
    result = bare(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tradepipe {__version__}"


def test_help_shows_flags_without_a_value_and_json_takes_none(tmp_path):
    runner = CliRunner()
    root = typer.main.get_command(app)
    for path in [(), *command_paths(root)]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    config = write_config(tmp_path)
    tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "buy", "signalPrice": 5}))
    assert len(tradepipe_json(config, "orders")) == 1
    wrong = tradepipe(config, "orders", "--json", "true", check=False)
    assert wrong.returncode == 2


def test_signals_status_names_the_valid_values(tmp_path):
    config = write_config(tmp_path)
    result = tradepipe(config, "signals", "--status", "bogus", check=False)
    assert result.returncode == 2
    assert "bogus" in result.stderr
    for status in ("accepted", "processed", "rejected", "duplicate"):
        assert status in result.stderr
    tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "buy", "signalPrice": 5}))
    assert tradepipe_json(config, "signals", "--status", "rejected") == []
    assert len(tradepipe_json(config, "signals", "--status", "processed")) == 1


def _many_orders_and_fills(tmp_path, count):
    config = write_config(tmp_path)
    tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "buy", "signalPrice": 5}))
    db = sqlite3.connect(tmp_path / "journal.db")
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO orders (client_order_id, account, ticker, side, quantity, order_type,"
            " time_in_force, role, status, created_at, updated_at)"
            " SELECT 'bulk' || i, 'paper', CASE i % 2 WHEN 0 THEN 'MSFT' ELSE 'TSLA' END, 'buy',"
            " '1', 'market', 'day', 'entry', 'filled', '2026-01-01T00:00:00+00:00',"
            " '2026-01-01T00:00:00+00:00' FROM n",
            (count,),
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO fills (fill_id, order_id, account, ticker, side, quantity, price,"
            " filled_at) SELECT 'bulk' || i, 1, 'paper',"
            " CASE i % 2 WHEN 0 THEN 'MSFT' ELSE 'TSLA' END, 'buy', '1', '5',"
            " '2026-01-01T00:00:00+00:00' FROM n",
            (count,),
        )
    db.close()
    return config


def test_orders_and_trades_say_on_stderr_when_the_listing_is_cut_short(tmp_path):
    config = _many_orders_and_fills(tmp_path, 250)  # + the AAPL order and fill: 251 of each
    for command, what in (("orders", "orders"), ("trades", "trades")):
        cut = tradepipe(config, command, "--json")
        assert len(json.loads(cut.stdout)) == 200  # the default; stdout is only the JSON
        assert f"showing 200 of 251 {what}; use --limit" in cut.stderr
        whole = tradepipe(config, command, "--json", "--limit", "1000")
        assert len(json.loads(whole.stdout)) == 251 and whole.stderr == ""
        text = tradepipe(config, command, "--limit", "3")
        assert f"showing 3 of 251 {what}" in text.stderr and "showing 3" not in text.stdout
        ticker = tradepipe_json(config, command, "--ticker", "msft", "--limit", "1000")
        assert len(ticker) == 125 and {row["ticker"] for row in ticker} == {"MSFT"}
        assert tradepipe(config, command, "--limit", "0", check=False).returncode == 2
    signals = tradepipe(config, "signals", "--limit", "1")
    assert "showing" not in signals.stderr  # one signal, all shown


def test_a_rejected_signal_shows_the_ticker_its_body_sent(tmp_path):
    config = write_config(tmp_path)
    sent = {"ticker": "NASDAQ:AAPL", "action": "hold", "quantity": 1}
    assert tradepipe(config, "send", json.dumps(sent), check=False).returncode == 1
    assert tradepipe(config, "send", "not json", check=False).returncode == 1
    unparsable, rejected = tradepipe_json(config, "signals")
    assert (rejected["status"], rejected["ticker"], rejected["action"]) == (
        "rejected",
        "NASDAQ:AAPL",
        "hold",
    )
    assert (unparsable["status"], unparsable["ticker"]) == ("rejected", None)
    listed = tradepipe(config, "signals", env={"COLUMNS": "200"}).stdout
    assert "NASDAQ:AAPL" in listed
