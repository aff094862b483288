"""Prometheus metrics (SPEC §14), in prometheus-client's own registry per engine (never the
global default: a test, or a process, running several servers keeps their series apart).

Counted as they happen, in memory (no SQL on the signal path): signals by strategy and status
at the webhook, deliveries by outcome, the acknowledgement and handover → submit latencies.
Read at each scrape from what the engine and the journal already keep: broker up/down, orders
by account and status, trading states, equity, the notification outbox. The daemon serves the
text at `GET /metrics` behind `[server].metrics_token` (daemon/webhook.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tradepipe.engine import Engine

# Seconds: a webhook answer is milliseconds (TradingView gives up at 3 s); a submission may
# wait for a broker round trip, or a reversal for its exit's fill.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SUBMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The engine's series and their registry; `text()` is the exposition a scrape gets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.signals = Counter(
            "tradepipe_signals",
            "Webhook requests for a strategy, by the status they were answered with"
            " (accepted, duplicate, rejected); each counted once.",
            ["strategy", "status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "tradepipe_deliveries",
            "Deliveries (a signal for one subscription) by outcome.",
            ["status"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "tradepipe_webhook_ack_seconds",
            "From a webhook request's arrival to its answer (the journal commit included).",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.submit_seconds = Histogram(
            "tradepipe_signal_submit_seconds",
            "From a signal's handover to the engine (after its commit) to its delivery's"
            " orders submitted.",
            buckets=SUBMIT_BUCKETS,
            registry=self.registry,
        )

    def watch(self, engine: Engine) -> None:
        """Read `engine`'s state at each scrape (once; the daemon calls it)."""
        self.registry.register(_EngineCollector(engine))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        up = GaugeMetricFamily(
            "tradepipe_broker_up",
            "1 while the account's broker answers (its order stream may still be down), else 0.",
            labels=["account"],
        )
        stream = GaugeMetricFamily(
            "tradepipe_broker_stream_up",
            "1 while the account's order stream is up, 0 while its orders are polled.",
            labels=["account"],
        )
        brokers = engine.health()["brokers"]
        for account in engine.brokers:
            detail = brokers.get(account, {})
            up.add_metric([account], 0 if detail.get("state") == "down" else 1)
            if "stream" in detail:
                stream.add_metric([account], 1 if detail["stream"].get("up", True) else 0)
        yield up
        yield stream

        orders = GaugeMetricFamily(
            "tradepipe_orders",
            "Orders in the journal by account and status.",
            labels=["account", "status"],
        )
        for account, status, count in engine.journal.conn.execute(
            "SELECT account, status, count(*) FROM orders GROUP BY account, status"
        ):
            orders.add_metric([str(account), str(status)], int(count))
        yield orders

        states = GaugeMetricFamily(
            "tradepipe_trading_state",
            "1 for each scope not active (SPEC §13), with its state; active scopes are absent.",
            labels=["scope_kind", "scope", "state"],
        )
        for row in engine.states.rows.values():
            scope = row.state.scope
            states.add_metric([str(scope.kind), scope.name, str(row.state.state)], 1)
        yield states

        equity = GaugeMetricFamily(
            "tradepipe_equity", "Each account's last equity snapshot.", labels=["account"]
        )
        for account in engine.brokers:
            snapshot = engine.journal.latest_equity(account)
            if snapshot is not None:
                equity.add_metric([account], float(snapshot.equity))
        yield equity

        yield GaugeMetricFamily(
            "tradepipe_blocked_tickers",
            "Account + ticker pairs whose new entries a reconciliation difference blocks.",
            value=len(engine.blocked),
        )
        yield GaugeMetricFamily(
            "tradepipe_notifications_pending",
            "Notifications journaled and not yet sent (the outbox backlog).",
            value=engine.journal.notification_backlog(),
        )
        sent = CounterMetricFamily(
            "tradepipe_notification_sends",
            "Messages this process sent to notification targets, by result.",
            labels=["result"],
        )
        sent.add_metric(["sent"], engine.notifier.sent)
        sent.add_metric(["failed"], engine.notifier.failed)
        yield sent
