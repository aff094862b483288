"""GET /metrics (SPEC §14): scraped over HTTP from the real `tradepipe serve`, with and without
the token, and parsed with prometheus-client's own text parser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import TOKEN, Daemon, free_port, wait_for, write_config
from tradepipe.engine.metrics import Metrics

METRICS_TOKEN = "mtok_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def with_token(tmp_path, token: str | None = METRICS_TOKEN):
    config = write_config(tmp_path, subscription="allow_add = true\n")
    if token is not None:
        text = config.read_text().replace("[journal]", f'metrics_token = "{token}"\n\n[journal]', 1)
        config.write_text(text)
    return config


def test_metrics_answer_only_the_bearer_of_the_token(tmp_path):
    with Daemon(with_token(tmp_path), free_port()) as daemon:
        url = f"{daemon.url}/metrics"
        for headers in (
            {},
            {"Authorization": f"Bearer {TOKEN}"},  # a webhook token is not the metrics token
            {"Authorization": METRICS_TOKEN},  # without "Bearer"
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        ):
            status, answer_headers, body = get(url, headers)
            assert status == 401, headers
            assert json.loads(body)["code"] == "unauthorized"
            assert METRICS_TOKEN.encode() not in body
            assert answer_headers["WWW-Authenticate"] == "Bearer"
        status, answer_headers, body = get(url, {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    assert answer_headers["Content-Type"].startswith("text/plain; version=")
    assert "tradepipe_signals_total" in body.decode()


def test_without_a_metrics_token_the_path_answers_as_if_it_did_not_exist(tmp_path):
    with Daemon(with_token(tmp_path, None), free_port()) as daemon:
        status, _, body = get(f"{daemon.url}/metrics", {"Authorization": "Bearer anything"})
        unknown_status, _, unknown = get(f"{daemon.url}/nothing-here")
    assert (status, unknown_status) == (404, 404)
    assert json.loads(body)["code"] == json.loads(unknown)["code"] == "not-found"


def test_metrics_count_signals_deliveries_orders_and_report_brokers_and_equity(tmp_path):
    with Daemon(with_token(tmp_path), free_port()) as daemon:
        webhook = f"{daemon.url}/webhook/{TOKEN}"
        buy = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        assert post(webhook, json.dumps({**buy, "id": "a"}).encode()) == 200
        assert post(webhook, json.dumps({**buy, "id": "a"}).encode()) == 200  # a duplicate
        assert post(webhook, json.dumps({**buy, "id": "b", "quantity": 0.4}).encode()) == 200
        assert post(webhook, b"{nope") == 400
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

        def scraped() -> dict:
            found = samples(get(f"{daemon.url}/metrics", auth)[2].decode())
            done = found.get(("tradepipe_deliveries_total", (("status", "rejected"),)))
            return found if done else {}

        found = wait_for(scraped, what="both deliveries counted")
    signals = {
        status: found[("tradepipe_signals_total", (("status", status), ("strategy", "trend")))]
        for status in ("accepted", "duplicate", "rejected")
    }
    assert signals == {"accepted": 2, "duplicate": 1, "rejected": 1}
    assert found[("tradepipe_deliveries_total", (("status", "submitted"),))] == 1
    assert found[("tradepipe_deliveries_total", (("status", "rejected"),))] == 1
    orders = ("tradepipe_orders", (("account", "paper"), ("status", "filled")))
    assert found[orders] == 1
    assert found[("tradepipe_broker_up", (("account", "paper"),))] == 1
    assert found[("tradepipe_equity", (("account", "paper"),))] > 0
    assert found[("tradepipe_notifications_pending", ())] == 0
    assert found[("tradepipe_webhook_ack_seconds_count", ())] == 4
    assert found[("tradepipe_signal_submit_seconds_count", ())] == 1


def test_each_engine_has_its_own_registry():
    first, second = Metrics(), Metrics()  # the global registry would refuse the second
    first.signals.labels("trend", "accepted").inc()
    assert b'tradepipe_signals_total{status="accepted",strategy="trend"} 1.0' in first.text()
    assert b"tradepipe_signals_total{" not in second.text()
