"""Adversarial requests against a real `tradepipe serve` on loopback (SPEC §3, §11).

Starts the daemon on a free port with a temporary paper config (a passphrase strategy and an
open one), sends N seeded adversarial requests over raw sockets (JSON mutations, lone surrogate
escapes, deep nesting, bad encodings, bad framing, broken chunking, huge headers, wrong tokens
and passphrases), each with a per-request timeout, then prints the answers by status, the 5xx,
the hangs (no answer in time), the requests closed without an answer, the daemon log's
errors, and the result of `tradepipe audit verify`. Goal: 0 5xx, 0 hangs, 0 unanswered, 0 errors.

    python bench/fuzz.py --requests 10000 --seed 1 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TOKEN = "fuzz_" + "Q" * 4 + "w8e7r6t5y4u3i2o1p0a9s8d7"
OPEN_TOKEN = "fuzz_" + "Z" * 4 + "a1s2d3f4g5h6j7k8l9z0x9c8"
SECRET = "fuzz-S3cret-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, port: int) -> Path:
    path = directory / "tradepipe.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[journal]
path = "{directory / "journal.db"}"

[accounts.paper]
broker = "paper"
cash = 100000

[strategies.guarded]
token = "{TOKEN}"
passphrase = "{SECRET}"
rate_limit_per_minute = 100000
rate_limit_per_hour = 1000000

[strategies.open]
token = "{OPEN_TOKEN}"
rate_limit_per_minute = 100000
rate_limit_per_hour = 1000000

[subscriptions.guarded-paper]
strategy = "guarded"
account = "paper"
enabled = false

[subscriptions.open-paper]
strategy = "open"
account = "paper"
enabled = false
"""
    )
    return path


# --- request generation ------------------------------------------------------------------------

FIELDS = [
    "ticker", "action", "quantity", "signalPrice", "stopLoss", "takeProfit", "passphrase", "id",
    "time", "orderType", "quantityType", "extras", "sentiment", "limitPrice", "x\ny", "\\udc80",
]  # fmt: skip
SCALARS = [
    '"AAPL"', '"buy"', '"sell"', "1", "-1", "0", "1e999", "1" * 5000, '"{{close}}"', "null",
    "true", '"\\udc80X"', '"\\ud800"', f'"{SECRET}"', '"wrong"', '"é€😀"', '"\\u0000"', "[]", "{}",
]  # fmt: skip


def json_value(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return rng.choice(SCALARS)
    if roll < 0.8:
        return "[" + ",".join(json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    return json_object(rng, depth + 1)


def json_object(rng: random.Random, depth: int = 0) -> str:
    items = [
        f'"{rng.choice(FIELDS)}":{json_value(rng, depth)}' for _ in range(rng.randint(0, 6))
    ]
    if rng.random() < 0.5:
        items.append('"ticker":"AAPL"')
        items.append(f'"action":"{rng.choice(["buy", "sell", "exit", "hold"])}"')
    if rng.random() < 0.5:
        passphrase = rng.choice([SECRET, "nope", "\\udc80"])
        items.append(f'"passphrase":"{passphrase}"')
    rng.shuffle(items)
    return "{" + ",".join(items) + "}"


def body_text(rng: random.Random) -> bytes:
    text = json_object(rng)
    kind = rng.randrange(12)
    if kind == 0:  # truncated
        text = text[: rng.randint(0, len(text))]
    elif kind == 1:  # junk inserted
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(["}", ",", "\\", "“", "'", "\x00", "{{", "\\u00"]) + text[at:]
    elif kind == 2:
        text = text.replace('"', "'")
    elif kind == 3:
        text = text.replace('"', "“", 3)
    elif kind == 4:  # deep nesting in a typed field
        depth = rng.choice([33, 500, 966, 990, 5000])
        text = '{"ticker":"AAPL","action":"buy","stopLoss":' + "[" * depth + "]" * depth + "}"
    elif kind == 5:  # big
        text = '{"ticker":"AAPL","action":"buy","pad":"' + "x" * rng.choice([60000, 70000]) + '"}'
    elif kind == 6:  # escaped passphrase key, malformed
        text = '{"ticker":"AAPL","pass\\u0070hrase":"' + SECRET + '",}'
    data = text.encode("utf-8", "surrogatepass")
    if kind == 7:  # not UTF-8
        data = b"\xff\xfe" + data
    elif kind == 8:
        data = text.encode("utf-16")
    return data


def request_bytes(rng: random.Random) -> bytes:
    body = body_text(rng)
    token = rng.choice([TOKEN, TOKEN, OPEN_TOKEN, OPEN_TOKEN, "nope", "x" * 9000, "%ff%00"])
    method = rng.choice(["POST"] * 12 + ["GET", "PUT", "GARBAGE", "POST /x"])
    path = rng.choice([f"/webhook/{token}"] * 8 + ["/healthz", "/api/status", "/api/replay", "/"])
    headers = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    for _ in range(rng.randint(0, 3)):
        headers.append(
            rng.choice(
                [
                    "X-Forwarded-For: 6.6.6.6",
                    "Content-Type: text/plain",
                    "webhook-signature: v1,é€",
                    "webhook-id: id\x7f",
                    "webhook-timestamp: 99999999999999999999",
                    "Authorization: Bearer \udcff\udcfe",
                    "Authorization: Bearer wrong",
                    "Expect: 100-continue",
                    "Connection: close",
                    "X-Long: " + "a" * rng.choice([100, 9000, 70000]),
                    "Bad Header: 1",
                    "Content-Encoding: " + rng.choice(["gzip", "deflate", "br", "zstd", "x"]),
                ]
            )
        )
    framing = rng.choice(["length"] * 6 + ["chunked", "bad-chunk", "short", "two-lengths",
                          "bad-length", "no-length", "chunk-missing-last"])  # fmt: skip
    if framing == "chunked":
        headers.append("Transfer-Encoding: chunked")
        cut = rng.randint(0, len(body))
        parts = [p for p in (body[:cut], body[cut:]) if p]
        body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    elif framing == "bad-chunk":
        headers.append("Transfer-Encoding: chunked")
        body = rng.choice([b"zz\r\n", b"-1\r\n", b"ffffffffffffffffff\r\n", b"5;x\x00\r\n"]) + body
    elif framing == "chunk-missing-last":
        headers.append("Transfer-Encoding: chunked")
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n"
    elif framing == "short":
        headers.append(f"Content-Length: {len(body) + rng.randint(1, 50)}")
    elif framing == "two-lengths":
        headers += [f"Content-Length: {len(body)}", f"Content-Length: {len(body) + 1}"]
    elif framing == "bad-length":
        headers.append(f"Content-Length: {rng.choice(['-1', 'x2', '1 2', '99999999999999999'])}")
    elif framing == "length":
        headers.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("utf-8", "surrogateescape") + body


# --- sending -----------------------------------------------------------------------------------


async def send(port: int, data: bytes, timeout: float, half_close: bool) -> str:
    """The answer's status code as text, or "hang" / "closed" / "reset"."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout
        )
    except (OSError, TimeoutError):
        return "connect-failed"
    try:
        writer.write(data)
        await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()  # the message is complete: what is missing never comes
        line = await asyncio.wait_for(reader.readline(), timeout)
        while line.split(b" ", 2)[1:2] == [b"100"]:  # Expect: 100-continue; the answer follows
            await asyncio.wait_for(reader.readline(), timeout)  # its blank line
            line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return "closed"
        return line.split(b" ", 2)[1].decode("latin-1")
    except TimeoutError:
        return "hang"
    except (ConnectionError, IndexError):
        return "reset"
    finally:
        writer.close()


async def run(port: int, count: int, seed: int, concurrency: int, timeout: float) -> dict:
    rng = random.Random(seed)
    # Most half-close after sending (what is missing never comes); the rest hold the connection
    # open, so an incomplete body is answered by the body timeout instead.
    requests = [(request_bytes(rng), rng.random() < 0.9) for _ in range(count)]
    results: collections.Counter[str] = collections.Counter()
    examples: dict[str, bytes] = {}
    queue = iter(enumerate(requests))

    async def worker() -> None:
        for _, (data, half_close) in queue:
            outcome = await send(port, data, timeout, half_close)
            results[outcome] += 1
            examples.setdefault(outcome, data[:300])

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"results": results, "examples": examples, "seconds": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="tradepipe-fuzz-"))
    port = free_port()
    config = write_config(directory, port)
    env = {**os.environ, "HOME": str(directory), "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("TRADEPIPE_")}
    log_path = directory / "serve.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "tradepipe", "--config", str(config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        raise SystemExit(f"serve did not start; see {log_path}") from None
                    time.sleep(0.1)
            outcome = asyncio.run(
                run(port, args.requests, args.seed, args.concurrency, args.timeout)
            )
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                alive = r.status == 200
        finally:
            daemon.terminate()
            daemon.wait(30)
    results = outcome["results"]
    log_text = log_path.read_text(errors="replace")
    error_lines = [
        line for line in log_text.splitlines() if " ERROR " in line or "Traceback" in line
    ]
    audit = subprocess.run(
        [sys.executable, "-m", "tradepipe", "--config", str(config), "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    fives = sum(n for status, n in results.items() if status.startswith("5"))
    print(f"{args.requests} requests, seed {args.seed}, {outcome['seconds']:.1f} s")
    for status, n in sorted(results.items()):
        print(f"  {status:>15}: {n}")
    print(f"5xx: {fives}  hangs: {results['hang']}  closed unanswered: {results['closed']}")
    print(f"healthz after: {'200' if alive else 'FAILED'}")
    print(f"daemon log: {len(log_text)} bytes, {len(error_lines)} error/traceback lines")
    for line in error_lines[:10]:
        print("   ", line[:200])
    # The open strategy has no passphrase: the same text sent to it is no secret there.
    leaks = [line for line in log_text.splitlines() if SECRET in line and "for open" not in line]
    print(f"log lines with the guarded strategy's passphrase: {len(leaks)}")
    print(f"audit verify: exit {audit.returncode}: {(audit.stdout + audit.stderr).strip()[:300]}")
    for status in results:
        if not status.isdigit() or status.startswith(("5", "408")):
            print(f"example {status}: {outcome['examples'][status]!r}")
    if results["408"]:
        print("(408: a body left incomplete on a connection held open: the body timeout)")
    bad = fives + results["hang"] + results["closed"] + len(error_lines) + len(leaks)
    bad += audit.returncode
    return 1 if bad or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
