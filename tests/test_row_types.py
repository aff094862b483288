"""The row types the engine holds (`OrderRow`, `DeliveryRow`) against the tables they type: one
key per column of the table after every migration, each declared as the journal reads it back
(INTEGER: int, TEXT: str, a nullable column: or None). A migration that adds, drops or loosens
a column fails here until the type follows it."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from decimal import Decimal as D

import pytest

from tests.helpers import queued_delivery
from tradepipe.core.brackets import KEPT_BY_RESIZE
from tradepipe.journal import DeliveryRow, Journal, OrderRow

NOW = datetime.fromisoformat("2026-12-05T09:00:00+00:00")
TYPES = [(OrderRow, "orders"), (DeliveryRow, "deliveries")]


@pytest.fixture
def journal(tmp_path):
    j = Journal.open(tmp_path / "j.db")
    yield j
    j.close()


def columns(journal: Journal, table: str) -> dict[str, tuple[str, bool]]:
    """Each column of the table, in order: its SQL type, and whether it may hold NULL."""
    info = journal.conn.execute(f"PRAGMA table_info({table})").fetchall()
    return {r["name"]: (r["type"], not r["notnull"] and not r["pk"]) for r in info}


def allowed(hint: object) -> set[type]:
    """The classes a key's declared type admits (`str | None`: str and NoneType)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return set(typing.get_args(hint))
    assert isinstance(hint, type)
    return {hint}


@pytest.mark.parametrize(("row_type", "table"), TYPES, ids=["orders", "deliveries"])
def test_each_key_is_a_column_of_its_table_in_order(journal, row_type, table):
    assert row_type.__total__
    assert list(row_type.__annotations__) == list(columns(journal, table))


@pytest.mark.parametrize(("row_type", "table"), TYPES, ids=["orders", "deliveries"])
def test_each_key_is_declared_as_the_journal_reads_its_column(journal, row_type, table):
    hints = typing.get_type_hints(row_type)
    for name, (sql_type, nullable) in columns(journal, table).items():
        base = {"INTEGER": int, "TEXT": str}[sql_type]
        expected = {base, type(None)} if nullable else {base}
        assert allowed(hints[name]) == expected, name


def test_a_resize_keeps_only_columns_of_orders():
    assert set(KEPT_BY_RESIZE) <= set(OrderRow.__annotations__)


def test_rows_as_written_and_as_read_hold_values_of_their_declared_types(journal):
    signal_id, delivery = queued_delivery(journal, NOW)
    order = journal.insert_order_row(
        client_order_id="tp-1-e",
        delivery_id=delivery["id"],
        signal_id=signal_id,
        subscription="trend-paper",
        account="paper",
        ticker="AAPL",
        side="buy",
        quantity=D("2.50"),
        order_type="limit",
        limit_price=D("101.10"),
        time_in_force="day",
        role="entry",
        extended_hours=1,
        status="submitting",
        created_at=NOW,
        updated_at=NOW,
    )
    child = journal.insert_order_row(
        **{column: order[column] for column in KEPT_BY_RESIZE if column != "parent_id"},
        parent_id=order["id"],
        client_order_id="tp-1-tp",
        quantity=D("2.5"),
        status="held",
        created_at=NOW,
        updated_at=NOW,
    )
    journal.update_order("tp-1-e", status="filled", filled_quantity=D("2.5"), updated_at=NOW)
    rows = [
        (DeliveryRow, delivery),
        (DeliveryRow, journal.delivery(delivery["id"])),
        (OrderRow, order),
        (OrderRow, child),
        (OrderRow, journal.order_by_client_id("tp-1-e")),
        *((OrderRow, row) for row in journal.bracket_children("paper")),  # kept in memory
    ]
    for row_type, row in rows:
        assert row is not None
        hints = typing.get_type_hints(row_type)
        assert list(row) == list(hints)
        for key, value in row.items():
            assert type(value) in allowed(hints[key]), (row_type.__name__, key, value)
