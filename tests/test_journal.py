"""The journal on a real SQLite file: durability settings, reopening, fills and positions."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import FixedClock
from tradepipe.errors import JournalError
from tradepipe.journal import Journal, apply_fill, migrations, require_sqlite, to_text

D = Decimal


@pytest.fixture
def journal(tmp_path):
    j = Journal.open(tmp_path / "j.db")
    yield j
    j.close()


def signal_row(clock, **extra):
    return {
        "strategy": "trend",
        "received_at": clock(),
        "source": "127.0.0.1",
        "body": "{}",
        "status": "accepted",
        "http_status": 200,
        **extra,
    }


def test_journal_runs_in_wal_with_full_sync(journal):
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_journal_tables_are_strict(journal):
    with pytest.raises(sqlite3.IntegrityError):  # STRICT refuses text in an INTEGER column
        journal.conn.execute(
            "INSERT INTO signals (received_at, body, status, http_status)"
            " VALUES ('t', '{}', 'x', 'abc')"
        )


def test_signal_survives_reopening(tmp_path):
    clock = FixedClock()
    journal = Journal.open(tmp_path / "j.db")
    signal_id = journal.record_signal(**signal_row(clock, ticker="AAPL", warnings=["w"]))
    journal.close()
    reopened = Journal.open(tmp_path / "j.db")
    row = reopened.signal(signal_id)
    assert row["ticker"] == "AAPL" and row["warnings"] == '["w"]'
    assert [r["id"] for r in reopened.unprocessed_signals()] == [signal_id]


def test_migrations_apply_once(tmp_path):
    Journal.open(tmp_path / "j.db").close()
    journal = Journal.open(tmp_path / "j.db")
    names = [r[0] for r in journal.conn.execute("SELECT name FROM _sqlite_migrations")]
    assert len(names) == len(set(names)) == len(migrations._migrations)


def test_reading_a_missing_journal_names_the_path(tmp_path):
    with pytest.raises(JournalError, match=r"no journal at .*missing\.db"):
        Journal.open(tmp_path / "missing.db", create=False)


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("3.34.1", True),
        ("3.8.10", True),
        ("2.9.0", True),
        ("3.35.0", False),
        ("3.45.1", False),
        ("4.0.0", False),
    ],
)
def test_an_sqlite_too_old_for_returning_is_refused_naming_both_versions(version, refused):
    if refused:
        with pytest.raises(JournalError, match=rf"SQLite {version} is too old.*3\.35\.0"):
            require_sqlite(version)
    else:
        require_sqlite(version)


def test_this_machines_sqlite_opens_a_journal(tmp_path):
    require_sqlite(sqlite3.sqlite_version)
    assert Journal.open(tmp_path / "j.db").conn.execute("SELECT 1").fetchone()[0] == 1


def test_instance_id_is_stable_across_opens(tmp_path):
    first = Journal.open(tmp_path / "j.db").instance
    assert Journal.open(tmp_path / "j.db").instance == first
    assert len(first) == 8


def test_duplicate_lookups_respect_window_and_status(journal):
    clock = FixedClock()
    original = journal.record_signal(**signal_row(clock, dedupe_key="k1", body_hash="h1"))
    journal.record_signal(
        **signal_row(clock, dedupe_key="k2", body_hash="h2", status="rejected", http_status=400)
    )
    since = clock.now.replace(hour=14)
    assert journal.find_signal_by_key("trend", "k1", since) == original
    assert journal.find_signal_by_key("other", "k1", since) is None
    assert journal.find_signal_by_key("trend", "k2", since) is None  # rejected ones don't count
    assert journal.find_signal_by_body("trend", "h1", since) == original
    assert journal.find_signal_by_body("trend", "h1", clock.now.replace(hour=16)) is None


def insert_order(journal, clock, client_order_id="c1"):
    return journal.insert_order(
        client_order_id=client_order_id,
        account="paper",
        ticker="AAPL",
        side="buy",
        quantity=D(5),
        order_type="market",
        time_in_force="day",
        role="entry",
        status="submitting",
        created_at=clock(),
        updated_at=clock(),
    )


def test_fill_moves_position_once(journal):
    clock = FixedClock()
    order_id = insert_order(journal, clock)
    fill = dict(
        fill_id="f1",
        order_id=order_id,
        account="paper",
        ticker="AAPL",
        side="buy",
        quantity=D(5),
        price=D(190),
        filled_at=clock(),
    )
    assert journal.record_fill(**fill) is True
    assert journal.record_fill(**fill) is False  # the same fill reported twice moves nothing
    assert journal.position("paper", "AAPL") == (D(5), D(190))


@pytest.mark.parametrize(("fee", "currency"), [(D("1.25"), "USD"), (None, None)])
def test_a_fill_keeps_the_fee_its_broker_reported_and_none_when_it_reported_none(
    journal, fee, currency
):
    clock = FixedClock()
    order_id = insert_order(journal, clock)
    journal.record_fill(
        fill_id="f1", order_id=order_id, account="paper", ticker="AAPL", side="buy",
        quantity=D(5), price=D(190), filled_at=clock(), fee=fee, fee_currency=currency,
    )  # fmt: skip
    row = journal.conn.execute("SELECT fee, fee_currency FROM fills").fetchone()
    assert (row[0], row[1]) == ((str(fee) if fee else None), currency)


def test_the_fills_still_waiting_for_a_fee_are_the_accounts_recent_ones_without_one(journal):
    """What a restarted engine reads to journal the fees a broker reports after its fills:
    the account's fills without a fee since a moment, with their orders' client order ids."""
    clock = FixedClock()
    old, recent, paid = (insert_order(journal, clock, cid) for cid in ("c-old", "c-new", "c-fee"))
    for fill_id, order_id, at, fee in [
        ("ib:old", old, clock.now - timedelta(days=8), None),  # before `since`
        ("ib:new", recent, clock.now - timedelta(hours=1), None),
        ("ib:paid", paid, clock.now, D(1)),  # its fee is journaled
        ("ib:late", paid, clock.now, None),
    ]:
        journal.record_fill(
            fill_id=fill_id, order_id=order_id, account="paper", ticker="AAPL", side="buy",
            quantity=D(1), price=D(190), filled_at=at, fee=fee, fee_currency=fee and "USD",
        )  # fmt: skip
    since = clock.now - timedelta(days=7)
    assert journal.feeless_fills("paper", since) == [("c-new", "ib:new"), ("c-fee", "ib:late")]
    assert journal.feeless_fills("other", since) == []
    journal.set_fill_fee("ib:late", D(1), "USD", clock())
    assert journal.feeless_fills("paper", since) == [("c-new", "ib:new")]


def test_an_event_detail_may_carry_any_key_even_journal(journal):
    # The engine records a reconciliation's `journal=` quantity as a detail keyword: the table
    # functions take the journal positionally only, so no detail key collides with it.
    clock = FixedClock()
    journal.record_reconciliation("paper AAPL", clock(), kind="position", journal="5")
    journal.record_operator_action("flatten", "paper", clock(), journal="all")
    details = [json.loads(e["detail"]) for e in journal.events()]
    assert details[-2] == {"kind": "position", "journal": "5"}
    assert details[-1] == {"action": "flatten", "journal": "all"}


def test_client_order_id_is_unique(journal):
    clock = FixedClock()
    insert_order(journal, clock)
    with pytest.raises(sqlite3.IntegrityError):
        insert_order(journal, clock)


@pytest.mark.parametrize(
    ("quantity", "average", "fill", "price", "expected"),
    [
        ("0", None, "5", "10", ("5", "10")),
        ("5", "10", "5", "20", ("10", "15")),
        ("5", "10", "-2", "20", ("3", "10")),
        ("5", "10", "-5", "20", ("0", None)),
        ("5", "10", "-8", "20", ("-3", "20")),
        ("-4", "50", "-4", "40", ("-8", "45")),
        ("-4", "50", "6", "40", ("2", "40")),
    ],
    ids=[
        "open",
        "add-averages",
        "reduce-keeps-average",
        "close",
        "cross-resets",
        "add-short",
        "cross-short",
    ],
)
def test_apply_fill(quantity, average, fill, price, expected):
    result = apply_fill(D(quantity), D(average) if average else None, D(fill), D(price))
    assert result == (D(expected[0]), D(expected[1]) if expected[1] else None)


@given(st.lists(st.tuples(st.integers(-50, 50).filter(bool), st.integers(1, 500)), max_size=30))
def test_apply_fill_quantity_is_the_sum_of_fills(fills):
    quantity, average = D(0), None
    for size, price in fills:
        quantity, average = apply_fill(quantity, average, D(size), D(price))
        assert (average is None) == (quantity == 0)
    assert quantity == sum(D(size) for size, _ in fills)


@pytest.fixture
def usual_umask():
    """umask 022, as a login shell has it (outside systemd's UMask=0077)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_journal_and_its_wal_and_shm_are_readable_by_the_owner_only(tmp_path, usual_umask):
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    try:
        journal.record_operator_action("test", "modes", FixedClock()())
        files = [path, tmp_path / "j.db-wal", tmp_path / "j.db-shm"]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: 0o600 for f in files
        }
    finally:
        journal.close()


# ---- equity snapshots (SPEC §13)


def test_equity_snapshots_give_the_risk_figures(tmp_path):
    from datetime import UTC, datetime, timedelta, timezone

    journal = Journal.open(tmp_path / "j.db")
    day = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    assert journal.latest_equity("paper") is None
    assert journal.day_start_equity("paper", day) is None
    assert journal.high_water_mark("paper") is None
    for minutes, equity, reason in [
        (-90, "9500", "start"),
        (-30, "9800.5", "periodic"),
        (30, "10250", "fill"),  # "10250" < "9800.5" as text: the mark must compare numbers
        (60, "9900", "periodic"),
    ]:
        journal.record_equity(
            "paper", Decimal(equity), Decimal(1000), day + timedelta(minutes=minutes), reason
        )
    journal.record_equity("other", Decimal(99999), None, day + timedelta(minutes=90), "start")
    journal.close()

    journal = Journal.open(tmp_path / "j.db")  # read back from the file
    latest = journal.latest_equity("paper")
    assert (latest.equity, latest.cash, latest.reason) == (Decimal(9900), Decimal(1000), "periodic")
    assert latest.taken_at == day + timedelta(minutes=60)
    assert journal.day_start_equity("paper", day) == Decimal("9800.5")
    # A day start given in another zone is the same moment.
    new_york = timezone(timedelta(hours=-5))
    assert journal.day_start_equity("paper", day.astimezone(new_york)) == Decimal("9800.5")
    # Before the first snapshot: the first one after the day's start stands in for it.
    assert journal.day_start_equity("paper", day - timedelta(days=1)) == Decimal(9500)
    assert journal.high_water_mark("paper") == Decimal(10250)
    assert journal.high_water_mark("paper", since=day + timedelta(minutes=45)) == Decimal(9900)
    assert journal.high_water_mark("paper", since=day + timedelta(days=1)) is None
    assert journal.latest_equity("other").cash is None
    rows = journal.equity_snapshots("paper", since=day)
    assert [(r.equity, r.reason) for r in rows] == [
        (Decimal(10250), "fill"),
        (Decimal(9900), "periodic"),
    ]
    with pytest.raises(ValueError, match="no time zone"):
        journal.record_equity("paper", Decimal(1), None, datetime(2026, 1, 1), "start")


@given(
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**30), 10**30).map(Decimal)
    | st.tuples(st.integers(-(10**12), 10**12), st.integers(-12, 12)).map(
        lambda t: Decimal(t[0]).scaleb(t[1])
    )
)
def test_a_decimal_is_spelled_whole_without_exponent_and_a_fraction_exactly(value):
    """The journal's spelling of a Decimal: a whole number plainly (no exponent, no ".0"), any
    other exactly as str() spells it (its trailing zeros kept), whatever path is taken."""
    text = to_text(value)
    assert Decimal(text) == value  # exactly, however many digits
    if value == value.to_integral_value():
        assert re.fullmatch(r"-?[0-9]+", text)
        if len(value.as_tuple().digits) <= 28:  # the spelling the journal always had
            assert text == format(value.normalize(), "f")
    else:
        assert text == str(value)


def test_the_status_sets_the_journal_queries_by_are_the_models(tmp_path):
    """Status sets live in core.model once (issue 15): the journal's live orders are LIVE_ORDER,
    and the paper books' resting orders are RESTING_ORDER, spelled word for word as the partial
    index that serves them (SQLite uses it only for the same terms)."""
    from tradepipe.core.model import LIVE_ORDER, RESTING_ORDER
    from tradepipe.journal import orders, paper_books

    def listed(sql: str) -> set[str]:
        return set(re.findall(r"'([a-z_]+)'", sql))

    assert listed(orders._LIVE_ORDER) == set(LIVE_ORDER)
    assert listed(paper_books._WORKING_SQL) == set(RESTING_ORDER)
    journal = Journal.open(tmp_path / "j.db")
    (index,) = journal.conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'paper_orders_live'"
    ).fetchone()
    assert paper_books._WORKING_SQL in index
    plan = journal.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM paper_orders WHERE account = ?"
        f" AND {paper_books._WORKING_SQL} ORDER BY rowid",
        ("paper",),
    ).fetchall()
    assert any("paper_orders_live" in str(tuple(row)) for row in plan), plan
