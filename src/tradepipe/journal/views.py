"""The `--json` shapes of SPEC §10, built from journal rows: keys may be added, never renamed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.journal import DeliveryRow, Journal, OrderRow
from tradepipe.journal import events as _events
from tradepipe.journal.trading_states import state_row_json

if TYPE_CHECKING:
    from tradepipe.config.model import Config


def number(text: str | None) -> int | float | None:
    """Journal decimals as JSON numbers: whole numbers stay integers."""
    if text is None:
        return None
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def position_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": row["account"],
        "ticker": row["ticker"],
        "quantity": number(row["quantity"]),
        "average_price": number(row["average_price"]),
        "updated_at": row["updated_at"],
    }


def order_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "client_order_id": row["client_order_id"],
        "signal_id": row["signal_id"],
        "subscription": row["subscription"],
        "account": row["account"],
        "ticker": row["ticker"],
        "side": row["side"],
        "quantity": number(row["quantity"]),
        "filled_quantity": number(row["filled_quantity"]),
        "average_fill_price": number(row["average_fill_price"]),
        "order_type": row["order_type"],
        "limit_price": number(row["limit_price"]),
        "stop_price": number(row["stop_price"]),
        "trail_amount": number(row["trail_amount"]),
        "trail_percent": number(row["trail_percent"]),
        "time_in_force": row["time_in_force"],
        "role": row["role"],
        "parent_id": row["parent_id"],
        "status": row["status"],
        "broker_order_id": row["broker_order_id"],
        "broker_message": row["broker_message"],
        "created_at": row["created_at"],
    }


def trade_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "account": row["account"],
        "ticker": row["ticker"],
        "side": row["side"],
        "quantity": number(row["quantity"]),
        "price": number(row["price"]),
        "filled_at": row["filled_at"],
        # What the broker charged, as it reported it; null: it reported nothing (SPEC §14).
        "fee": number(row.get("fee")),
        "fee_currency": row.get("fee_currency"),
    }


def pending_view(delivery: DeliveryRow) -> dict[str, Any]:
    """A delivery waiting for approval, with the plan it had when the signal arrived."""
    plan = json.loads(delivery["plan"]) if delivery["plan"] else {}
    return {
        "id": delivery["id"],
        "signal_id": delivery["signal_id"],
        "subscription": delivery["subscription"],
        "account": delivery["account"],
        "ticker": delivery["ticker"],
        "plan": plan.get("summary"),
        "created_at": delivery["created_at"],
    }


_TIME_OF = {"orders": "created_at", "fills": "filled_at", "signals": "received_at"}


def newest(
    journal: Journal,
    table: str,
    *,
    limit: int,
    account: str | None = None,
    ticker: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The newest `limit` rows of `table` (orders, fills, signals) that match, newest first,
    and how many match in all, so a listing can say it was cut short. `since`: made at or
    after it (an order's creation, a fill's time, a signal's receipt)."""
    assert table in ("orders", "fills", "signals")
    conditions, params = [], []
    if since is not None:  # times are journaled as ISO-8601 in UTC: text order is time order
        conditions.append(f"{_TIME_OF[table]} >= ?")
        params.append(since.astimezone(UTC).isoformat())
    for column, value in (("account", account), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if ticker is not None:  # as the account spells it, in any case
        conditions.append("upper(ticker) = upper(?)")
        params.append(ticker)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT * FROM {table}{where} ORDER BY id DESC LIMIT ?"
    rows = [dict(row) for row in journal.conn.execute(sql, [*params, limit])]
    if len(rows) < limit:
        return rows, len(rows)
    total = journal.conn.execute(f"SELECT count(*) FROM {table}{where}", params).fetchone()[0]
    return rows, int(total)


def signal_views(journal: Journal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deliveries = journal.deliveries_for([r["id"] for r in rows])
    orders = _by_delivery(journal.orders_for_deliveries([d["id"] for d in deliveries]))
    by_signal: dict[int, list[dict[str, Any]]] = {}
    for delivery in deliveries:
        by_signal.setdefault(delivery["signal_id"], []).append(
            {
                "subscription": delivery["subscription"],
                "account": delivery["account"],
                "status": delivery["status"],
                "reason": delivery["reason"],
                "order_ids": [o["id"] for o in orders.get(delivery["id"], [])],
            }
        )
    return [_signal_view(row, by_signal.get(row["id"], [])) for row in rows]


def signal_detail(journal: Journal, signal_id: int) -> dict[str, Any] | None:
    """Everything about one signal: payload, errors, and per delivery the plan, provenance,
    orders and the brokers' answers."""
    row = journal.signal(signal_id)
    if row is None:
        return None
    deliveries = journal.deliveries_for([signal_id])
    orders = _by_delivery(journal.orders_for_deliveries([d["id"] for d in deliveries]))
    scheduled: dict[int, list[dict[str, Any]]] = {}
    for item in journal.schedules(delivery_ids=[d["id"] for d in deliveries]):
        scheduled.setdefault(item["delivery_id"], []).append(schedule_view(item))
    view = _signal_view(
        row,
        [
            {
                "subscription": d["subscription"],
                "account": d["account"],
                "status": d["status"],
                "reason": d["reason"],
                "plan": json.loads(d["plan"]) if d["plan"] else None,
                "provenance": json.loads(d["provenance"]) if d["provenance"] else [],
                "orders": [order_view(o) for o in orders.get(d["id"], [])],
                # Its delay, and the cancel of an order left unfilled (SPEC §13).
                "schedules": scheduled.get(d["id"], []),
                "updated_at": d["updated_at"],
            }
            for d in deliveries
        ],
    )
    view.update(
        source=row["source"],
        body=row["body"],
        payload=json.loads(row["payload"]) if row["payload"] else None,
        errors=json.loads(row["errors"]),
        processed_at=row["processed_at"],
    )
    return view


def schedule_view(row: dict[str, Any]) -> dict[str, Any]:
    """One scheduled item (SPEC §13) as the CLI shows it."""
    return {
        key: row[key]
        for key in (
            "id",
            "kind",
            "subscription",
            "account",
            "ticker",
            "client_order_id",
            "due_at",
            "status",
            "reason",
        )
    } | {"detail": json.loads(row["detail"]) if row["detail"] else None}


def _signal_view(row: dict[str, Any], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "strategy": row["strategy"],
        "received_at": row["received_at"],
        "ticker": row["ticker"] if row["ticker"] is not None else _sent(row, "ticker"),
        "action": row["action"] if row["action"] is not None else _sent(row, "action"),
        "status": row["status"],
        "error": row["error"],
        "http_status": row["http_status"],
        "duplicate_of": row["duplicate_of"],
        "warnings": json.loads(row["warnings"]),
        "deliveries": deliveries,
    }


def _sent(row: dict[str, Any], field: str) -> str | None:
    """A rejected signal's `field` as its body sent it, when the body is a JSON object that has
    it as text: the journal keeps only the body of a signal that did not validate."""
    if row["status"] != "rejected" or not row.get("body"):
        return None
    try:
        payload = json.loads(row["body"])
    except ValueError:
        return None
    value = payload.get(field) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _by_delivery(orders: list[OrderRow]) -> dict[int | None, list[OrderRow]]:
    grouped: dict[int | None, list[OrderRow]] = {}
    for order in orders:
        grouped.setdefault(order["delivery_id"], []).append(order)
    return grouped


def status_view(
    config: Config,
    journal: Journal,
    daemon: dict[str, Any] | None,
    live: dict[str, Any] | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`tradepipe status`: the daemon, each account's broker health, the trading states in
    force, and work still pending. `live` is the running daemon's own report; without a daemon
    brokers are not checked and the states are the journal's (those over by `now` left out)."""

    def count(sql: str) -> int:
        return int(journal.conn.execute(sql).fetchone()[0])

    health = (live or {}).get("brokers", {})
    return {
        "daemon": {
            "running": daemon is not None,
            "url": daemon.get("url") if daemon else None,
            "pid": daemon.get("pid") if daemon else None,
        },
        "journal": str(journal.path),
        "accounts": [
            {
                "name": name,
                "broker": account.broker,
                "ok": health.get(name, {}).get("ok") if live else None,
                "checked_at": health.get(name, {}).get("checked_at"),
                "error": health.get(name, {}).get("error"),
                "differences": health.get(name, {}).get("differences", []),
                # ok / degraded (its order stream is down, orders are polled) / down
                "state": health.get(name, {}).get("state") if live else None,
                "stream": health.get(name, {}).get("stream"),
            }
            for name, account in config.accounts.items()
        ],
        "blocked": (live or {}).get("blocked", []),
        "stalled_signals": (live or {}).get("stalled_signals", []),
        "trading_states": (
            live["trading_states"]
            if live and "trading_states" in live
            else [
                state_row_json(row)
                for row in journal.trading_states()
                if now is None or row.state.until_at is None or now < row.state.until_at
            ]
        ),
        "pending": {
            "signals": count("SELECT count(*) FROM signals WHERE status = 'accepted'"),
            "approvals": count("SELECT count(*) FROM deliveries WHERE status = 'pending_approval'"),
            "unknown_orders": count("SELECT count(*) FROM orders WHERE status = 'unknown'"),
            "held_orders": count("SELECT count(*) FROM orders WHERE status = 'held'"),
            # SPEC §14: the outbox not yet sent, and what was given up after 24 h of failures
            "notifications": count("SELECT count(*) FROM notifications WHERE status = 'pending'"),
            "notifications_given_up": count(
                "SELECT count(*) FROM notifications WHERE status = 'given_up'"
            ),
        },
    }


def newest_events(journal: Journal, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The last `limit` audit events, oldest first, their detail decoded; and how many there are."""
    _events.written(journal)
    total = journal.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    rows = journal.events(after=max(total - limit, 0))
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return rows, total
