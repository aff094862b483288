"""Broker secrets never reach the journal, the logs or any output (SPEC §8).

Canary keys and secrets are planted in the environment of a real `tradepipe serve` trading at a
fake Alpaca and a Binance stub, one account with a secret the broker refuses. Then everything a
user or an attacker could read is searched for them: the daemon's log, every CLI answer
(including errors), and the bytes of the journal files.
"""

from __future__ import annotations

import json
import textwrap

from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.helpers import TOKEN, Daemon, free_port, tradepipe

CANARIES = {
    "TRADEPIPE_ALPACA_KEY": "CANARYak1Zq",
    "TRADEPIPE_ALPACA_SECRET": "CANARYas2Xw",
    "TRADEPIPE_BINANCE_KEY": "CANARYbk3Vv",
    "TRADEPIPE_BINANCE_SECRET": "CANARYbs4Uu",
    "TRADEPIPE_ALPACA_WRONG_KEY": "CANARYak1Zq",
    "TRADEPIPE_ALPACA_WRONG_SECRET": "CANARYwrong5Tt",
}


def config_text(alpaca: FakeAlpaca, binance: FakeBinance, port: int) -> str:
    return textwrap.dedent(
        f"""
        [server]
        host = "127.0.0.1"
        port = {port}

        [journal]
        path = "journal.db"

        [accounts.alpaca]
        broker = "alpaca"
        base_url = "{alpaca.url}"
        stream_url = "{alpaca.stream_url}"
        data_url = "{alpaca.url}"
        timeout = 2

        [accounts.alpaca-wrong]
        broker = "alpaca"
        base_url = "{alpaca.url}"
        stream_url = "{alpaca.stream_url}"
        data_url = "{alpaca.url}"
        timeout = 2

        [accounts.binance]
        broker = "ccxt"
        exchange = "binance"
        sandbox = false
        base_url = "{binance.url}"
        timeout = 2

        [strategies.trend]
        token = "{TOKEN}"

        [subscriptions.stocks]
        strategy = "trend"
        account = "alpaca"

        [subscriptions.stocks-wrong]
        strategy = "trend"
        account = "alpaca-wrong"

        [strategies.crypto]
        token = "{TOKEN[::-1]}"

        [subscriptions.coins]
        strategy = "crypto"
        account = "binance"
        fractional = true
        time_in_force = "gtc"
        """
    )


def test_no_output_and_no_journal_byte_holds_a_broker_secret(tmp_path):
    with (
        FakeAlpaca(
            key=CANARIES["TRADEPIPE_ALPACA_KEY"], secret=CANARIES["TRADEPIPE_ALPACA_SECRET"]
        ) as alpaca,
        FakeBinance(
            api_key=CANARIES["TRADEPIPE_BINANCE_KEY"], secret=CANARIES["TRADEPIPE_BINANCE_SECRET"]
        ) as binance,
    ):
        alpaca.set_price("AAPL", 100)
        binance.set_price("BTCUSDT", 50000)
        port = free_port()
        config = tmp_path / "tradepipe.toml"
        config.write_text(config_text(alpaca, binance, port))
        outputs: list[str] = []

        def run(*args: str) -> None:
            result = tradepipe(config, *args, env=CANARIES, check=False)
            outputs.append(result.stdout + result.stderr)

        daemon = Daemon(config, port, env=CANARIES)
        daemon.start()
        try:
            stock = {"ticker": "AAPL", "action": "buy", "quantity": 2, "signalPrice": 100}
            run("send", "--strategy", "trend", json.dumps(stock), "--wait")
            alpaca.reject_next("insufficient buying power", status=403, code=40310000)
            run("send", "--strategy", "trend", json.dumps(stock | {"quantity": 3}), "--wait")
            coin = {"ticker": "BTCUSDT", "action": "buy", "quantity": 0.01}
            run("send", "--strategy", "crypto", json.dumps(coin), "--wait")
            for args in (
                ("signals",),
                ("signals", "show", "1"),
                ("signals", "show", "2"),
                ("orders", "--json"),
                ("trades", "--json"),
                ("positions", "--json"),
                ("status", "--json"),
                ("status",),
                ("audit", "--json"),
                ("config", "check"),
                ("config", "check", "--json"),
                ("flatten", "--yes"),
            ):
                run(*args)
        finally:
            outputs.append(daemon.stop())
        run("config", "check", "--debug")  # a traceback, if any, must not carry them either

    everything = "\n".join(outputs)
    # The run did what it should, so the search covered real answers, errors included.
    assert "submitted" in everything
    assert "insufficient buying power" in everything
    assert "alpaca-wrong" in everything
    for name, value in CANARIES.items():
        assert value not in everything, f"{name} leaked into an output"
    for path in tmp_path.glob("journal.db*"):
        data = path.read_bytes()
        for name, value in CANARIES.items():
            assert value.encode() not in data, f"{name} leaked into {path.name}"
