"""The webhook against a real aiohttp server on a loopback port (SPEC §3)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.helpers import TOKEN, FixedClock, write_config
from tradepipe.config import load_config
from tradepipe.core.auth import sign
from tradepipe.daemon.serve import make_brokers
from tradepipe.daemon.webhook import MAX_BODY, make_app
from tradepipe.engine import Engine
from tradepipe.journal import Journal

D = Decimal


@contextlib.asynccontextmanager
async def running(config_path: Path, clock: FixedClock | None = None):
    """The real app on 127.0.0.1:<free port>, its journal and engine."""
    config = load_config(config_path)
    clock = clock or FixedClock()
    journal = Journal.open(Path(config.journal.path))
    journal.group_commits()  # as the daemon runs it
    engine = Engine(config, journal, make_brokers(config, journal, clock), clock)
    runner = web.AppRunner(make_app(config, journal, engine, clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await engine.start()
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
            yield session, journal, engine
    finally:
        await engine.stop()
        await runner.cleanup()
        journal.close()


def scenario(config_path, test, clock=None):
    async def main():
        async with running(config_path, clock) as parts:
            await test(*parts)

    asyncio.run(main())


async def post(session, body, token=TOKEN, headers=None):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    async with session.post(f"/webhook/{token}", data=data, headers=headers or {}) as response:
        return response.status, await response.json()


BUY = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 190}


def test_accepted_signal_is_journaled_then_traded(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, BUY)
        assert (status, answer) == (
            200,
            {"ok": True, "signal_id": 1, "duplicate": False, "warnings": []},
        )
        await engine.drain()
        assert journal.signal(1)["status"] == "processed"
        assert journal.position("paper", "AAPL") == (D(5), D(190))

    scenario(write_config(tmp_path), test)


def test_text_plain_body_is_parsed_as_json(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(
            session, json.dumps(BUY), headers={"Content-Type": "text/plain"}
        )
        assert status == 200 and answer["ok"]

    scenario(write_config(tmp_path), test)


def test_unknown_fields_come_back_as_warnings(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, {**BUY, "quantiy": 3})
        assert status == 200
        assert len(answer["warnings"]) == 1 and "quantiy" in answer["warnings"][0]
        assert "quantity" in answer["warnings"][0]

    scenario(write_config(tmp_path), test)


def test_malformed_json_gets_400_and_is_journaled(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, b'{"ticker": "AAPL", "action": "buy",}')
        assert status == 400
        assert answer["ok"] is False and answer["code"] == "malformed-json"
        assert answer["errors"][0]["field"] == ""
        row = journal.signal(answer["signal_id"])
        assert row["status"] == "rejected" and row["http_status"] == 400

    scenario(write_config(tmp_path), test)


def test_invalid_payload_lists_every_problem_with_its_field(tmp_path):
    async def test(session, journal, engine):
        body = {"action": "hold", "quantity": -1, "stopLoss": {"percent": 0}}
        status, answer = await post(session, body)
        assert status == 400 and answer["code"] == "invalid-payload"
        fields = {e["field"] for e in answer["errors"]}
        assert {"ticker", "action", "quantity", "stopLoss.percent"} <= fields
        assert json.loads(journal.signal(answer["signal_id"])["errors"]) == answer["errors"]

    scenario(write_config(tmp_path), test)


def test_a_ticker_outside_the_alphabet_is_a_400_that_lists_every_problem(tmp_path):
    """SPEC §12: a newline would forge a log line, NUL and RTL overrides reach the broker."""

    async def test(session, journal, engine):
        body = {**BUY, "ticker": "AAPL\n2026-01-01 INFO forged", "quantity": 0}
        status, answer = await post(session, body)
        assert status == 400 and answer["code"] == "invalid-payload"
        assert [e["field"] for e in answer["errors"]] == ["ticker", "quantity"]
        assert 'has "\\n" (U+000A) at position 5' in answer["errors"][0]["message"]
        assert "\n" not in answer["message"]  # the log line shows the escape, not a new line
        assert journal.signal(answer["signal_id"])["status"] == "rejected"
        status, answer = await post(session, {**BUY, "ticker": "A" * 5000})
        assert (status, answer["errors"][0]["field"]) == (400, "ticker")
        assert "at most 64 characters (got 5000)" in answer["errors"][0]["message"]
        await engine.drain()
        assert journal.position("paper", "AAPL") is None  # nothing traded

    scenario(write_config(tmp_path), test)


def test_a_price_its_order_type_does_not_send_comes_back_as_a_warning(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, {**BUY, "orderType": "market", "limitPrice": 189})
        assert status == 200
        assert answer["warnings"] == [
            'field "limitPrice" only applies to orderType limit or stop_limit'
            " (orderType is market), ignored"
        ]

    scenario(write_config(tmp_path), test)


def test_error_shape_is_pinned(tmp_path):
    async def test(session, journal, engine):
        _, answer = await post(session, {"ticker": "AAPL"})
        assert set(answer) == {"ok", "code", "message", "errors", "signal_id"}
        assert all(set(e) == {"field", "message"} for e in answer["errors"])

    scenario(write_config(tmp_path), test)


def test_unknown_token_is_404_and_not_journaled(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, BUY, token="nope" * 8)
        assert status == 404 and answer["code"] == "unknown-token"
        assert journal.signals() == []

    scenario(write_config(tmp_path), test)


def test_body_over_64_kib_is_413(tmp_path):
    async def test(session, journal, engine):
        body = json.dumps({**BUY, "extras": {"pad": "x" * MAX_BODY}})
        status, answer = await post(session, body)
        assert status == 413 and answer["code"] == "payload-too-large"

    scenario(write_config(tmp_path), test)


def passphrase_config(tmp_path):
    return write_config(tmp_path, strategy='passphrase = "s3cret"\n')


@pytest.mark.parametrize(
    ("passphrase", "status", "code"),
    [
        (None, 401, "passphrase-required"),
        ("wrong", 403, "invalid-passphrase"),
        ("s3cret", 200, None),
    ],
    ids=["missing", "wrong", "right"],
)
def test_passphrase(tmp_path, passphrase, status, code):
    async def test(session, journal, engine):
        body = dict(BUY) if passphrase is None else {**BUY, "passphrase": passphrase}
        got, answer = await post(session, body)
        assert got == status and answer.get("code") == code
        row = journal.signals()[0]
        assert (
            "s3cret" not in row["body"] and "wrong" not in row["body"]
        )  # never journaled in clear

    scenario(passphrase_config(tmp_path), test)


def test_rate_limit_answers_429_and_does_not_journal_the_flood(tmp_path):
    path = write_config(tmp_path, strategy="rate_limit_per_minute = 3\n")

    async def test(session, journal, engine):
        statuses = [(await post(session, {**BUY, "id": f"n{i}"}))[0] for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert len(journal.signals()) == 3

    scenario(path, test)


def test_duplicate_by_id_answers_the_original_and_trades_once(tmp_path):
    async def test(session, journal, engine):
        _, first = await post(session, {**BUY, "id": "alert-1"})
        status, second = await post(session, {**BUY, "id": "alert-1", "signalPrice": 191})
        assert status == 200 and second == {**first, "duplicate": True}
        await engine.drain()
        assert journal.position("paper", "AAPL")[0] == D(5)
        assert [r["status"] for r in journal.signals()] == ["duplicate", "processed"]

    scenario(write_config(tmp_path), test)


def test_duplicate_by_webhook_id_header(tmp_path):
    async def test(session, journal, engine):
        _, first = await post(session, BUY, headers={"webhook-id": "msg_1"})
        _, second = await post(session, {**BUY, "quantity": 6}, headers={"webhook-id": "msg_1"})
        assert second["duplicate"] and second["signal_id"] == first["signal_id"]

    scenario(write_config(tmp_path), test)


def test_identical_body_within_the_window_is_a_duplicate_and_after_it_is_not(tmp_path):
    clock = FixedClock()

    async def test(session, journal, engine):
        _, first = await post(session, BUY)
        clock.advance(4)
        _, second = await post(session, BUY)
        clock.advance(2)  # 6 s after the first, past the default 5 s window
        _, third = await post(session, BUY)
        assert second["duplicate"] and not third["duplicate"]
        assert third["signal_id"] != first["signal_id"]

    scenario(write_config(tmp_path), test, clock)


def test_stale_signal_is_rejected(tmp_path):
    path = write_config(tmp_path, strategy="max_signal_age = 30\n")
    clock = FixedClock()

    async def test(session, journal, engine):
        old = (clock.now - timedelta(minutes=2)).isoformat()
        status, answer = await post(session, {**BUY, "time": old})
        assert status == 400 and answer["code"] == "stale-signal"
        assert answer["errors"][0]["field"] == "time"

    scenario(path, test, clock)


@pytest.mark.parametrize(("ahead", "warned"), [(-600, False), (0, False), (5, False), (30, True)])
def test_a_signal_from_the_future_warns_about_the_clocks(tmp_path, ahead, warned):
    clock = FixedClock()

    async def test(session, journal, engine):
        sent = (clock.now + timedelta(seconds=ahead)).isoformat()
        status, answer = await post(session, {**BUY, "time": sent})
        assert status == 200  # accepted either way: a warning, not a refusal
        skew = [w for w in answer["warnings"] if "ahead of this server's clock" in w]
        assert skew == (
            [
                "the signal's time is 30 s ahead of this server's clock; check that NTP runs here"
                " (max_signal_age relies on the two clocks agreeing)"
            ]
            if warned
            else []
        )
        assert (journal.signal(answer["signal_id"])["warnings"].count("NTP") == 1) is warned

    scenario(write_config(tmp_path), test, clock)


def test_source_ip_allowlist(tmp_path):
    path = write_config(tmp_path, strategy='allowed_ips = ["52.89.214.238"]\n')

    async def test(session, journal, engine):
        status, answer = await post(session, BUY)
        assert status == 403 and answer["code"] == "ip-not-allowed"
        # X-Forwarded-For is not believed from an untrusted peer.
        status, _ = await post(session, BUY, headers={"X-Forwarded-For": "52.89.214.238"})
        assert status == 403

    scenario(path, test)


def test_source_ip_allowlist_behind_a_trusted_proxy(tmp_path):
    extra = 'allowed_ips = ["52.89.214.238"]\ntrusted_proxies = ["127.0.0.1"]\n'
    path = write_config(tmp_path, strategy=extra)

    async def test(session, journal, engine):
        status, _ = await post(session, BUY, headers={"X-Forwarded-For": "52.89.214.238"})
        assert status == 200

    scenario(path, test)


def test_standard_webhooks_signature(tmp_path):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    path = write_config(tmp_path, strategy=f'webhook_secret = "{secret}"\n')
    clock = FixedClock()

    async def test(session, journal, engine):
        body = json.dumps(BUY).encode()
        stamp = int(clock.now.timestamp())
        good = {
            "webhook-id": "m1",
            "webhook-timestamp": str(stamp),
            "webhook-signature": "v1," + sign(b"k" * 32, "m1", stamp, body),
        }
        assert (await post(session, body, headers=good))[0] == 200
        bad = {**good, "webhook-id": "m2"}
        status, answer = await post(session, body, headers=bad)
        assert status == 401 and answer["code"] == "invalid-signature"
        status, answer = await post(session, body)
        assert status == 401 and "missing header" in answer["message"]

    scenario(path, test, clock)


def test_healthz(tmp_path):
    async def test(session, journal, engine):
        async with session.get("/healthz") as response:
            assert response.status == 200 and (await response.json())["ok"] is True

    scenario(write_config(tmp_path), test)


def test_ack_does_not_wait_for_the_broker(tmp_path):
    """Processing follows the answer: a broker step that takes long does not delay the 200."""

    async def test(session, journal, engine):
        broker = engine.brokers["paper"]
        original = broker.submit

        async def slow_submit(request):
            await asyncio.sleep(1.0)
            return await original(request)

        broker.submit = slow_submit  # a slow broker, injected at the adapter seam
        started = time.perf_counter()
        status, _ = await post(session, BUY)
        elapsed = time.perf_counter() - started
        assert status == 200 and elapsed < 0.5
        assert journal.position("paper", "AAPL") is None
        await engine.drain()
        assert journal.position("paper", "AAPL")[0] == D(5)

    scenario(write_config(tmp_path), test)


def test_body_arriving_in_several_segments_is_read_whole(tmp_path):
    """A body split across TCP segments (a WAN, a proxy) must not be cut short."""

    async def test(session, journal, engine):
        host, port = session._base_url.host, session._base_url.port
        body = json.dumps({**BUY, "extras": {"note": "x" * 1500}}).encode()
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"POST /webhook/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head + body[:700])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body[700:])
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        assert journal.signals()[0]["status"] in ("accepted", "processed")

    scenario(write_config(tmp_path), test)


def test_numeric_passphrase_never_leaks(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, {**BUY, "passphrase": 482913})
        assert status == 403
        stored = json.dumps(journal.signals()[0])
        assert "482913" not in stored and "482913" not in json.dumps(answer)

    scenario(passphrase_config(tmp_path), test)


def test_numeric_passphrase_without_a_configured_one_is_not_echoed(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, {"ticker": "AAPL", "passphrase": 482913})
        assert status == 400
        assert "482913" not in json.dumps(answer)
        assert "482913" not in json.dumps(journal.signals()[0])

    scenario(write_config(tmp_path), test)


def test_deeply_nested_json_is_a_journaled_400_not_a_500(tmp_path):
    async def test(session, journal, engine):
        status, answer = await post(session, b"[" * 30000)
        assert status == 400 and answer["code"] == "malformed-json"
        assert journal.signals()[0]["status"] == "rejected"

    scenario(write_config(tmp_path), test)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # an escaped key the text redaction cannot see, with the right passphrase: accepted
        ('{"ticker":"AAPL","action":"buy","signalPrice":5,"pass\\u0070hrase":"s3cret"}', 200),
        # the same in UTF-16, which JSON parsers accept and the signal parser refuses
        (
            json.dumps({"ticker": "AAPL", "action": "buy", "passphrase": "s3cret"}).encode(
                "utf-16"
            ),
            400,
        ),
        # a wrong passphrase behind an escaped key: refused, and still not stored
        ('{"ticker":"AAPL","action":"buy","pass\\u0070hrase":"s3cretX"}', 403),
    ],
    ids=["escaped-key", "utf-16", "escaped-key-wrong"],
)
def test_a_passphrase_never_reaches_the_journal_however_it_is_spelled(tmp_path, body, status):
    async def test(session, journal, engine):
        got, _ = await post(session, body)
        assert got == status
        for row in journal.signals():
            stored = json.dumps(row)
            assert "s3cret" not in stored and "s\\u00003" not in stored
            assert "s\\u0000" not in stored  # no UTF-16 spelling either

    scenario(passphrase_config(tmp_path), test)


def test_failed_passphrases_neither_use_up_the_signals_limit_nor_flood_the_journal(tmp_path):
    path = write_config(tmp_path, strategy='passphrase = "s3cret"\nrate_limit_per_minute = 3\n')

    async def test(session, journal, engine):
        wrong = [(await post(session, {**BUY, "passphrase": "guess"}))[0] for _ in range(5)]
        assert wrong == [403, 403, 403, 429, 429]  # the flood stops being journaled
        status, _ = await post(session, {**BUY, "passphrase": "s3cret"})
        assert status == 200  # the real signal still goes through
        assert [s["http_status"] for s in reversed(journal.signals())] == [403, 403, 403, 200]

    scenario(path, test)


def test_a_journal_that_cannot_be_written_answers_503_and_queues_nothing(tmp_path):
    async def test(session, journal, engine):
        journal.conn.execute("PRAGMA query_only = ON")  # every write now fails
        status, answer = await post(session, BUY)
        assert status == 503 and answer["code"] == "journal-unavailable"
        assert "could not be written" in answer["message"]
        journal.conn.execute("PRAGMA query_only = OFF")
        await engine.drain()
        assert journal.signals() == [] and journal.orders() == []

    scenario(write_config(tmp_path), test)
