"""Shared test helpers: config files on disk, a fixed clock, free ports, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TOKEN = "tok_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"  # 32 URL-safe characters: > 128 bits
OTHER_TOKEN = "tok_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6"


def write_config(
    directory: Path,
    extra: str = "",
    *,
    port: int | None = None,
    subscription: str = "",
    strategy: str = "",
    account: str = "",
) -> Path:
    """A config with one paper account, strategy `trend` and subscription `trend-paper`;
    `account`, `strategy` and `subscription` are extra lines for those three tables. The port
    is a free one unless given: a fixed default would let a `tradepipe send` in one test reach
    another test's (or another checkout's) daemon."""
    path = directory / "tradepipe.toml"
    port = free_port() if port is None else port
    path.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"
            port = {port}

            [journal]
            path = "journal.db"

            [accounts.paper]
            broker = "paper"
            cash = 100000
            """
        )
        + textwrap.dedent(account)
        + textwrap.dedent(
            f"""
            [strategies.trend]
            token = "{TOKEN}"
            """
        )
        + textwrap.dedent(strategy)
        + textwrap.dedent(
            """
            [subscriptions.trend-paper]
            strategy = "trend"
            account = "paper"
            """
        )
        + textwrap.dedent(subscription)
        + textwrap.dedent(extra)
    )
    return path


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tradepipe(
    config: Path | None,
    *args: str,
    stdin: str | None = None,
    home: Path | None = None,
    check: bool = True,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a user would, in a subprocess."""
    prefix = ["--config", str(config)] if config is not None else []
    home = home or (config.parent if config else Path.cwd())
    result = subprocess.run(
        [sys.executable, "-m", "tradepipe", *prefix, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(home) | (env or {}),
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"tradepipe {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def tradepipe_json(config: Path, *args: str) -> list | dict:
    return json.loads(tradepipe(config, *args, "--json").stdout)


def deliver(config: Path, payload: dict, env: dict[str, str] | None = None) -> dict:
    """`tradepipe send --wait` of a signal to a one-subscription strategy: its delivery."""
    answer = tradepipe(config, "send", json.dumps(payload), "--json", "--wait", env=env)
    (delivery,) = json.loads(answer.stdout)["signal"]["deliveries"]
    return delivery


def held(config: Path) -> Decimal:
    """The journal's position, summed over accounts and tickers (`tradepipe positions`)."""
    return sum(
        (Decimal(str(p["quantity"])) for p in tradepipe_json(config, "positions")), Decimal(0)
    )


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str | None = None) -> T:
    """Poll until `check` answers something true (returned), or the time runs out: then its
    last answer, false, to assert on — or, naming `what` was awaited, an AssertionError that
    says so. What a daemon journals after its answer needs this."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise AssertionError(f"timed out waiting for {what}")
            return value
        time.sleep(0.02)


class Daemon:
    """`tradepipe serve` as a subprocess on a free loopback port."""

    def __init__(
        self, config: Path, port: int, home: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.port = port
        self.home = home or config.parent
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> Daemon:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradepipe",
                "--config",
                str(self.config),
                "serve",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=cli_env(self.home) | self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.process.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("serve did not become ready")

    def stop(self, sig: int | None = None) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output or ""

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


def on_disk(journal: Path, sql: str, *params: object) -> list[tuple]:
    """Rows as committed to the journal file, through a second, read-only connection (closed
    after: sqlite3's `with` only ends a transaction)."""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def queued_delivery(journal: Any, at: datetime, **signal: Any) -> tuple[int, Any]:
    """An accepted signal and its queued delivery to subscription trend-paper (account paper,
    AAPL), journaled: (the signal's id, the delivery's row)."""
    signal_id = journal.record_signal(
        strategy="trend",
        received_at=at,
        source="test",
        body="{}",
        status="accepted",
        http_status=200,
        **signal,
    )
    delivery = journal.ensure_delivery(
        signal_id=signal_id,
        subscription="trend-paper",
        account="paper",
        ticker="AAPL",
        status="queued",
        created_at=at,
        updated_at=at,
    )
    return signal_id, delivery
