"""Running under systemd: the notify protocol spoken to a real socket, SIGTERM, the unit file."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import Daemon, free_port, write_config
from tradepipe.daemon.listener import RESERVED_DESCRIPTORS

UNIT = Path(__file__).parent.parent / "systemd" / "tradepipe.service"


def received(sock: socket.socket, until: float) -> list[str]:
    messages = []
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def test_serve_speaks_sd_notify_pings_the_watchdog_and_exits_0_on_sigterm(tmp_path):
    # A short path: AF_UNIX addresses are limited to 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    address = directory / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(0.05)
        env = {"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "200000"}  # ping every 0.1 s
        daemon = Daemon(write_config(tmp_path), free_port(), env=env).start()
        try:
            messages = received(sock, time.monotonic() + 1.0)
        finally:
            output = daemon.stop(signal.SIGTERM)
        messages += received(sock, time.monotonic() + 0.2)
    shutil.rmtree(directory)
    assert messages[0] == "READY=1"
    assert messages.count("WATCHDOG=1") >= 5  # ~10 expected in one second
    assert messages[-1] == "STOPPING=1"
    assert daemon.process.returncode == 0, output


def test_sighup_reloads_between_reloading_and_ready_and_the_daemon_stays(tmp_path):
    directory = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    address = directory / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(0.05)
        daemon = Daemon(write_config(tmp_path), free_port(), env={"NOTIFY_SOCKET": str(address)})
        daemon.start()
        try:
            assert received(sock, time.monotonic() + 0.3) == ["READY=1"]
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            daemon.process.send_signal(signal.SIGHUP)
            messages = received(sock, time.monotonic() + 1.0)
            alive = daemon.process.poll() is None
        finally:
            output = daemon.stop(signal.SIGTERM)
    shutil.rmtree(directory)
    assert alive, output
    reloading, ready = messages
    # systemd >= 253 wants the request's CLOCK_MONOTONIC time with RELOADING=1.
    match = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", reloading)
    assert match and int(match[1]) >= before, reloading
    assert ready == "READY=1"


def test_the_unit_file_has_the_directives_the_deployment_relies_on():
    text = UNIT.read_text()
    directives = dict(re.findall(r"^([A-Za-z]+)=(.*)$", text, re.MULTILINE))
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "StateDirectory": "tradepipe",
        "NoNewPrivileges": "yes",
        "ExecReload": "/bin/kill -HUP $MAINPID",  # `systemctl reload`: re-read the config
    }
    assert {k: directives.get(k) for k in expected} == expected
    assert int(directives["WatchdogSec"]) > 0
    # The listener's connection cap (1024) plus its reserve must fit under the descriptor limit.
    assert int(directives["LimitNOFILE"]) >= 1024 + RESERVED_DESCRIPTORS
    assert directives["Environment"] == "TRADEPIPE_JOURNAL__PATH=%S/tradepipe/tradepipe.db"
    assert re.search(r"^#LoadCredential=\S+:\S+$", text, re.MULTILINE)  # documented example


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit_file(tmp_path):
    # verify checks ExecStart's binary exists: point it at this environment's tradepipe.
    binary = Path(sys.executable).with_name("tradepipe")
    unit = tmp_path / "tradepipe.service"
    unit.write_text(UNIT.read_text().replace("/opt/tradepipe/bin/tradepipe", str(binary)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
