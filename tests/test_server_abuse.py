"""The webhook under hostile input (SPEC §3, §11): every bad request a 4xx in the one error shape,
journaled where §3 says so, no secret stored or logged. A real app on loopback, behind the same
bounded listener the daemon runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import TOKEN, FixedClock, write_config
from tradepipe.config import load_config
from tradepipe.daemon.listener import BoundedRunner, site
from tradepipe.daemon.logs import EscapingFormatter
from tradepipe.daemon.serve import Actions, make_brokers
from tradepipe.daemon.webhook import make_app
from tradepipe.engine import Engine
from tradepipe.journal import Journal

SECRET = "s3cret-Pass"
PASSPHRASE = f'passphrase = "{SECRET}"\n'
API_TOKEN = "api-token-for-tests"
BUY = {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 100}


@contextlib.asynccontextmanager
async def running(config_path: Path, *, body_timeout: float = 10.0, **runner_args):
    """The real app behind BoundedRunner on 127.0.0.1:<free port>: (host, port, journal)."""
    config = load_config(config_path)
    clock = FixedClock()
    journal = Journal.open(Path(config.journal.path))
    journal.group_commits()
    engine = Engine(config, journal, make_brokers(config, journal, clock), clock)
    app = make_app(
        config,
        journal,
        engine,
        clock,
        api_token=API_TOKEN,
        actions=Actions(config, engine),
        body_timeout=body_timeout,
    )
    runner = BoundedRunner(app, access_log=None, **runner_args)
    await runner.setup()
    await engine.start()
    await site(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield host, port, journal
    finally:
        await engine.stop()
        await runner.cleanup()
        journal.close()


async def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict]:
    """Send raw bytes; the status and JSON body of the one answer (AssertionError if none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
        return status, json.loads(body)
    finally:
        writer.close()


def request(body: bytes | str, headers: str = "", path: str = f"/webhook/{TOKEN}") -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n{headers}\r\n"
    return head.encode("utf-8", "surrogateescape") + data


def assert_error_shape(answer: dict) -> None:
    assert answer["ok"] is False
    assert isinstance(answer["code"], str) and isinstance(answer["message"], str)
    assert all(set(e) == {"field", "message"} for e in answer["errors"])


def scenario(config_path: Path, test, **kwargs) -> None:
    async def main():
        async with running(config_path, **kwargs) as (_, port, journal):
            await test(port, journal)

    asyncio.run(main())


# Each was a 500 with a traceback and nothing journaled.
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (r'{"ticker":"\udc80X","action":"buy"}', "ticker"),
        (r'{"ticker":"AAPL","action":"\udc80"}', "action"),
        (r'{"ticker":"AAPL","action":"buy","id":"\ud800"}', "id"),
        (r'{"ticker":"AAPL","action":"buy","\udc80":1}', "\\udc80"),
        (r'{"ticker":"AAPL","action":"buy","stopLoss":{"percent":"\udc80"}}', "stopLoss.percent"),
    ],
)
def test_lone_surrogate_escapes_are_a_400_and_journaled(tmp_path, body, field):
    async def test(port, journal):
        status, answer = await exchange(port, request(body))
        assert status == 400 and answer["code"] == "invalid-payload", answer
        assert_error_shape(answer)
        assert [e["field"] for e in answer["errors"]] == [field]
        assert journal.signal(answer["signal_id"])["status"] == "rejected"

    scenario(write_config(tmp_path), test)


def test_a_lone_surrogate_passphrase_is_a_403(tmp_path):
    async def test(port, journal):
        body = r'{"ticker":"AAPL","action":"buy","passphrase":"\udc80"}'
        status, answer = await exchange(port, request(body))
        assert (status, answer["code"]) == (403, "invalid-passphrase")

    scenario(write_config(tmp_path, strategy=PASSPHRASE), test)


def test_deep_nesting_inside_a_typed_field_is_a_400(tmp_path):
    async def test(port, journal):
        # Around the parser's own limit, where the old code crashed showing the value.
        for depth in (40, *range(900, 1000, 6), 5000):
            body = '{"ticker":"AAPL","action":"buy","stopLoss":' + "[" * depth + "]" * depth + "}"
            status, answer = await exchange(port, request(body))
            assert status == 400, (depth, answer)
            assert_error_shape(answer)

    scenario(write_config(tmp_path), test)


def test_a_bogus_content_encoding_is_a_400_and_journaled(tmp_path):
    async def test(port, journal):
        body = json.dumps(BUY)
        status, answer = await exchange(port, request(body, "Content-Encoding: gzip\r\n"))
        assert (status, answer["code"]) == (400, "unreadable-body")
        assert journal.signal(answer["signal_id"])["http_status"] == 400

    scenario(write_config(tmp_path), test)


def test_a_non_ascii_webhook_signature_is_a_401(tmp_path):
    secret = 'webhook_secret = "whsec_' + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" + '"\n'

    async def test(port, journal):
        headers = "webhook-id: m1\r\nwebhook-timestamp: 1795186800\r\nwebhook-signature: v1,é€\r\n"
        status, answer = await exchange(port, request(json.dumps(BUY), headers))
        assert (status, answer["code"]) == (401, "invalid-signature")

    scenario(write_config(tmp_path, strategy=secret), test)


def test_the_local_api_answers_a_bad_bearer_and_bad_json_with_4xx(tmp_path):
    async def test(port, journal):
        bad_bearer = "Authorization: Bearer \udcff\udcfe\r\n"  # raw 0xff 0xfe on the wire
        status, answer = await exchange(port, request("{}", bad_bearer, "/api/status"))
        assert (status, answer["code"]) == (401, "unauthorized")
        good = f"Authorization: Bearer {API_TOKEN}\r\n"
        for body in ('{"signal_id":', "[" * 5000, b"\xff\xfe"):
            status, answer = await exchange(port, request(body, good, "/api/replay"))
            assert (status, answer["code"]) == (400, "malformed-json"), answer

    scenario(write_config(tmp_path), test)


@pytest.mark.parametrize(
    "data",
    [
        # The last chunk never comes.
        f"POST /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        '5\r\n{"a":\r\n',
        # Half the announced body.
        f"POST /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + '{"ti',
    ],
    ids=["missing-last-chunk", "half-sent-body"],
)
def test_a_body_that_never_completes_gets_a_408(tmp_path, data):
    async def test(port, journal):
        status, answer = await exchange(port, data.encode(), timeout=3)
        assert (status, answer["code"]) == (408, "body-timeout")
        assert journal.signal(answer["signal_id"])["http_status"] == 408

    scenario(write_config(tmp_path), test, body_timeout=0.3)


@pytest.mark.parametrize(
    "head",
    [
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: x2\r\n",
        "Content-Length: -2\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n",
        "X-Bad Header: 1\r\n",
        "X-Long: " + "a" * 9000 + "\r\n",
        "".join(f"X-{i}: 1\r\n" for i in range(200)),
    ],
    ids=["duplicate-length", "bad-length", "negative-length", "chunked-and-length", "bad-chunk",
         "bad-header-name", "long-header", "too-many-headers"],
)  # fmt: skip
def test_bad_framing_gets_a_400_in_the_error_shape(tmp_path, head):
    async def test(port, journal):
        data = f"POST /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\n{head}\r\n{{}}".encode()
        status, answer = await exchange(port, data)
        assert 400 <= status < 500
        assert_error_shape(answer)

    scenario(write_config(tmp_path), test)


def test_unknown_paths_and_methods_answer_in_the_error_shape(tmp_path):
    async def test(port, journal):
        for data, expected in (
            (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
            (f"GET /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 405),
        ):
            status, answer = await exchange(port, data)
            assert status == expected
            assert_error_shape(answer)

    scenario(write_config(tmp_path), test)


def test_malformed_bodies_spend_the_failed_auth_budget_not_the_real_one(tmp_path):
    async def test(port, journal):
        for _ in range(70):
            status, _answer = await exchange(port, request('{"ticker":'))
            assert status in (400, 429)
        for n in range(3):
            body = json.dumps({**BUY, "passphrase": SECRET, "id": f"real-{n}"})
            status, answer = await exchange(port, request(body))
            assert status == 200, answer

    scenario(write_config(tmp_path, strategy=PASSPHRASE), test)


def test_every_x_forwarded_for_line_is_read_before_the_allowlist(tmp_path):
    guards = 'allowed_ips = ["10.0.0.0/8"]\ntrusted_proxies = ["127.0.0.1"]\n'

    async def test(port, journal):
        body = json.dumps(BUY)
        one_line = "X-Forwarded-For: 10.1.2.3\r\n"
        status, _ = await exchange(port, request(body, one_line))
        assert status == 200
        two_lines = "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-For: 6.6.6.6\r\n"
        status, answer = await exchange(port, request(json.dumps({**BUY, "id": "2"}), two_lines))
        assert (status, answer["code"]) == (403, "ip-not-allowed")
        assert "6.6.6.6" in answer["message"]

    scenario(write_config(tmp_path, strategy=guards), test)


@pytest.mark.parametrize(
    "body",
    [
        "{'ticker':'AAPL','action':'buy','passphrase':'" + SECRET + "'}",
        "{“ticker”:“AAPL”,“passphrase”:“" + SECRET + "”}",
        '{"ticker":"AAPL","pass\\u0070hrase":"' + SECRET + '",}',
        '{"ticker":"AAPL","passphrase":"s3\\u0063ret-Pass",}',
        '{"ticker":"AAPL","comment":"' + SECRET + '","x":}',
        '{"ticker":"AAPL","action":"buy","passphrase":"' + SECRET + '","quantity":"' + SECRET
        + '"}',
    ],
    ids=["single-quotes", "smart-quotes", "escaped-key", "escaped-value", "elsewhere", "echoed"],
)
def test_the_passphrase_is_never_stored_whatever_the_body(tmp_path, body):
    async def test(port, journal):
        status, answer = await exchange(port, request(body))
        assert status == 400
        assert SECRET not in json.dumps(answer)
        row = journal.signal(answer["signal_id"])
        stored = json.dumps(row, default=str)
        assert SECRET not in stored and "s3\\\\u0063ret" not in stored, stored
        assert "***" in row["body"]

    scenario(write_config(tmp_path, strategy=PASSPHRASE), test)
    for path in tmp_path.iterdir():  # the journal, its WAL, anything written beside it
        if path.is_file() and path.suffix != ".toml":
            assert SECRET.encode() not in path.read_bytes(), path


def test_malformed_http_is_logged_in_one_line_without_the_request_bytes(tmp_path, caplog):
    async def test(port, journal):
        for data in (
            f"GARBAGE {SECRET}\r\n\r\n".encode(),
            f"POST /webhook/{TOKEN} HTTP/1.1\r\nX-{SECRET}\x01: 1\r\n\r\n".encode(),
            f"POST /webhook/{TOKEN} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{SECRET}\r\n\r\n".encode(),
        ):
            status, answer = await exchange(port, data)
            assert 400 <= status < 500 and SECRET not in json.dumps(answer)

    with caplog.at_level(logging.DEBUG):
        scenario(write_config(tmp_path), test)
    assert caplog.records
    assert SECRET not in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_newline_in_a_request_cannot_forge_a_log_line(tmp_path, caplog):
    async def test(port, journal):
        body = '{"ticker":"AAPL","action":"buy\\n2026-01-01 00:00:00 INFO forged: ok","x\\r\\ny":1}'
        status, _ = await exchange(port, request(body))
        assert status == 400

    with caplog.at_level(logging.INFO):
        scenario(write_config(tmp_path), test)
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    lines = [formatter.format(r) for r in caplog.records if r.name == "tradepipe.daemon.webhook"]
    assert lines and all("\n" not in line and "\r" not in line for line in lines)
    assert any("forged" in line for line in lines)


# --- the fuzz: never a 5xx, always an answer ------------------------------------------------


class Served:
    """The app served from a thread of its own, for synchronous hypothesis examples."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.port = 0
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        async with running(self.config_path, body_timeout=0.5) as (_, port, _journal):
            self.port = port
            self.ready.set()
            await self.stopping.wait()

    def __enter__(self) -> Served:
        self.thread.start()
        assert self.ready.wait(20)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(20)


def answer_status(port: int, data: bytes, timeout: float = 5.0) -> int:
    """The status line's code of the answer to `data` (AssertionError if none comes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the message is complete: anything missing never comes
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"closed without an answer to {data[:200]!r}")
            received += chunk
    return int(received.split(b" ", 2)[1])


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["buy", "sell", "AAPL", "{{close}}", "1e999", "-0", SECRET, "\udc80"])
)
_fields = st.sampled_from(
    ["ticker", "action", "quantity", "signalPrice", "stopLoss", "takeProfit", "passphrase",
     "id", "time", "orderType", "quantityType", "extras", "sentiment", "x\ny", "\ud800"]
)  # fmt: skip
_payloads = st.dictionaries(
    _fields,
    st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(_fields, inner, max_size=3), max_leaves=8),
    max_size=8,
)  # fmt: skip


def _mutations(text: str, cut: int, junk: str) -> list[str]:
    return [text, text[:cut], text[:cut] + junk + text[cut:], text.replace('"', "'"), junk]


_framings = st.sampled_from(["length", "chunked", "bad-chunk", "short", "gzip", "two-lengths"])


def _frame(body: bytes, framing: str, headers: str) -> bytes:
    """A request around `body`; header text goes out as UTF-8, surrogates as the raw bytes."""
    head = f"POST /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\n{headers}"
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n\r\n"
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif framing == "bad-chunk":
        head += "Transfer-Encoding: chunked\r\n\r\n"
        body = b"zz\r\n" + body
    elif framing == "short":
        head += f"Content-Length: {len(body) + 7}\r\n\r\n"
    elif framing == "two-lengths":
        head += f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 1}\r\n\r\n"
    else:
        extra = "Content-Encoding: gzip\r\n" if framing == "gzip" else ""
        head += f"{extra}Content-Length: {len(body)}\r\n\r\n"
    return head.encode("utf-8", "surrogateescape") + body


_headers = st.lists(
    st.sampled_from(
        ["X-Forwarded-For: 6.6.6.6\r\n", "webhook-signature: v1,é\r\n", "Expect: 100-continue\r\n",
         "Content-Type: text/plain\r\n", "Authorization: Bearer \udcff\r\n", "webhook-id: \x7f\r\n"]
    ),
    max_size=3,
).map("".join)  # fmt: skip


def test_fuzzed_requests_never_get_a_5xx_and_always_get_an_answer(tmp_path):
    statuses: dict[int, int] = {}
    with Served(write_config(tmp_path, strategy=PASSPHRASE)) as served:

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            _payloads,
            st.integers(0, 200),
            st.sampled_from(["", "}", "\\", "\\u00", "[" * 990, "“", "\x00", "\udc80"]),
            st.integers(0, 4),
            _framings,
            _headers,
        )
        def fuzz(payload, cut, junk, which, framing, headers):
            text = _mutations(json.dumps(payload, ensure_ascii=which % 2 == 0), cut, junk)[which]
            body = text.encode("utf-8", "surrogatepass")
            status = answer_status(served.port, _frame(body, framing, headers))
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, (status, body[:300], framing, headers)

        fuzz()
    assert sum(statuses.values()) >= 300 and any(400 <= s < 500 for s in statuses)


def test_the_aiohttp_client_sees_json_errors_too(tmp_path):
    # The client TradingView-like senders use: a 4xx with a JSON body they can print.
    async def test(port, journal):
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/webhook/{TOKEN}"
            async with session.post(url, data=b"\xff\xfe{") as response:
                assert response.status == 400
                assert_error_shape(await response.json(content_type=None))

    scenario(write_config(tmp_path), test)


def test_a_warning_that_quotes_the_passphrase_is_never_stored(tmp_path):
    # {"passphrase": P, P: 1} is a valid signal with an unknown field named P: its warning
    # ("unknown field "P" ignored") was journaled and answered as it was
    body = json.dumps({**BUY, "passphrase": SECRET, SECRET: 1})

    async def test(port, journal):
        status, answer = await exchange(port, request(body))
        assert status == 200 and answer["warnings"]
        assert SECRET not in json.dumps(answer)
        assert SECRET not in json.dumps(journal.signal(answer["signal_id"]), default=str)

    scenario(write_config(tmp_path, strategy=PASSPHRASE), test)
    for path in tmp_path.iterdir():
        if path.is_file() and path.suffix != ".toml":
            assert SECRET.encode() not in path.read_bytes(), path
