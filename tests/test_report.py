"""The report's pure core: round trips matched FIFO (core/round_trips.py) and the figures,
drawdown and execution quality built from them (core/report.py), against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.instruments import ContractSpec, unit_multiplier
from tradepipe.core.model import Side
from tradepipe.core.report import (
    GroupBy,
    execution,
    make_report,
    max_drawdown,
    netted_fee,
    percentiles,
)
from tradepipe.core.round_trips import ReportFill, match_fills

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def fills(
    *specs: tuple, subscription: str | None = "sub", ticker: str = "AAPL"
) -> list[ReportFill]:
    """(order id, side, quantity, price[, fee[, multiplier[, subscription]]]) one minute apart."""
    made = []
    for n, spec in enumerate(specs):
        order, side, quantity, price, *rest = spec
        fee = D(rest[0]) if len(rest) > 0 else D(0)
        multiplier = D(rest[1]) if len(rest) > 1 else D(1)
        sub = rest[2] if len(rest) > 2 else subscription
        made.append(
            ReportFill(
                id=n + 1,
                order_id=order,
                account="paper",
                ticker=ticker,
                side=Side(side),
                quantity=D(quantity),
                price=D(price),
                filled_at=T0 + timedelta(minutes=n),
                subscription=sub,
                strategy="trend" if sub else None,
                multiplier=multiplier,
                fee=fee,
            )
        )
    return made


# (name, fills, [(direction, quantity, entry, exit, gross, fees, net)],
#  open lots [(direction, quantity, price)])
ROUND_TRIPS = [
    (
        "long, one exit",
        fills((1, "buy", "10", "100"), (2, "sell", "10", "110")),
        [("long", "10", "100", "110", "100", "0", "100")],
        [],
    ),
    (
        "short, one exit",
        fills((1, "sell", "5", "50"), (2, "buy", "5", "40")),
        [("short", "5", "50", "40", "50", "0", "50")],
        [],
    ),
    (
        "partial exits: a winner then a loser",
        fills((1, "buy", "10", "100"), (2, "sell", "4", "105"), (3, "sell", "6", "95")),
        [
            ("long", "4", "100", "105", "20", "0", "20"),
            ("long", "6", "100", "95", "-30", "0", "-30"),
        ],
        [],
    ),
    (
        "ES future, multiplier 50",
        fills((1, "buy", "2", "5000", "0", "50"), (2, "sell", "2", "5010.25", "0", "50")),
        [("long", "2", "5000", "5010.25", "1025", "0", "1025")],
        [],
    ),
    (
        "short ES future that loses",
        fills((1, "sell", "1", "5000", "2.5", "50"), (2, "buy", "1", "5004", "2.5", "50")),
        [("short", "1", "5000", "5004", "-200", "5", "-205")],
        [],
    ),
    (
        "losing long",
        fills((1, "buy", "3", "20"), (2, "sell", "3", "18")),
        [("long", "3", "20", "18", "-6", "0", "-6")],
        [],
    ),
    (
        "fees on both fills",
        fills((1, "buy", "10", "100", "1"), (2, "sell", "10", "110", "1")),
        [("long", "10", "100", "110", "100", "2", "98")],
        [],
    ),
    (
        "a reversal fill closes the long and opens a short with the rest of its fee",
        fills((1, "buy", "5", "10"), (2, "sell", "8", "12", "0.8")),
        [("long", "5", "10", "12", "10", "0.5", "9.5")],
        [("short", "3", "12")],
    ),
    (
        "FIFO over two lots, one exit order",
        fills((1, "buy", "5", "10"), (2, "buy", "5", "20"), (3, "sell", "7", "30")),
        [("long", "7", "90", "30", "120", "0", "120")],
        [("long", "3", "20")],
    ),
    (
        "one exit order filled in two fills is one trade",
        fills((1, "buy", "10", "100"), (2, "sell", "4", "101"), (2, "sell", "6", "103")),
        [("long", "10", "100", "102.2", "22", "0", "22")],
        [],
    ),
    (
        "an operator's flatten (no subscription) closes the subscription's lot",
        fills((1, "buy", "10", "100"), (2, "sell", "10", "90", "0", "1", None)),
        [("long", "10", "100", "90", "-100", "0", "-100")],
        [],
    ),
    (
        "two subscriptions on one ticker are matched apart",
        fills(
            (1, "buy", "10", "100", "0", "1", "a"),
            (2, "sell", "4", "101", "0", "1", "b"),
            (3, "sell", "10", "102", "0", "1", "a"),
        ),
        [("long", "10", "100", "102", "20", "0", "20")],
        [("short", "4", "101")],
    ),
]


@pytest.mark.parametrize(
    ("fills_", "expected", "still_open"),
    [case[1:] for case in ROUND_TRIPS],
    ids=[case[0] for case in ROUND_TRIPS],
)
def test_round_trips_match_the_hand_computed_ones(fills_, expected, still_open) -> None:
    matched = match_fills(fills_)
    got = [
        (t.direction, t.quantity, t.entry_price, t.exit_price, t.gross, t.fees, t.net)
        for t in matched.round_trips
    ]
    entry_of_fifo = {"90": D(40) / 7 + D(50) / 7}  # (5×10 + 2×20) / 7
    want = [
        (d, D(q), entry_of_fifo.get(e, D(e)), D(x), D(g), D(f), D(n))
        for d, q, e, x, g, f, n in expected
    ]
    assert got == want
    assert [(lot.direction, lot.quantity, lot.price) for lot in matched.open_lots] == [
        (d, D(q), D(p)) for d, q, p in still_open
    ]


def test_figures_of_five_trades() -> None:
    # Nets +100, −30, +20, −50, +10: curve 100, 70, 90, 40, 50 → drawdown 100 − 40 = 60.
    sequence = []
    for n, (entry, exit_) in enumerate([(100, 110), (100, 97), (100, 102), (100, 95), (100, 101)]):
        sequence += [(2 * n + 1, "buy", "10", str(entry)), (2 * n + 2, "sell", "10", str(exit_))]
    report = make_report(fills(*sequence), {})
    total = report.total
    assert (total.trades, total.wins, total.losses) == (5, 3, 2)
    assert total.win_rate == D("0.6")
    assert total.realized == D(50)
    assert total.profit_factor == D(130) / D(80)
    assert (total.average_win, total.average_loss) == (D(130) / 3, D(-40))
    assert total.max_drawdown == D(60)
    assert [v for _, v in report.curve] == [D(100), D(70), D(90), D(40), D(50)]


def test_unrealized_at_the_mark_less_the_opening_fee_and_grouping_by_ticker() -> None:
    future = ReportFill(
        9, 9, "paper", "ESZ2026", Side.SELL, D(1), D(5000), T0, "sub", multiplier=D(50)
    )
    fs = [*fills((1, "buy", "10", "100", "1"), ticker="AAPL"), future]
    report = make_report(fs, {("paper", "AAPL"): D(105)}, by=GroupBy.TICKER)
    by_ticker = {g.group: g for g in report.groups}
    assert by_ticker["AAPL"].unrealized == D(49)  # 5 × 10 − 1
    assert by_ticker["AAPL"].open_quantity == D(10)
    assert by_ticker["ESZ2026"].unrealized == 0  # no mark: counted 0 and named
    assert by_ticker["ESZ2026"].open_quantity == D(-1)
    assert report.unmarked == ("paper ESZ2026",)


def test_the_window_reports_trips_closed_inside_it_from_lots_opened_before() -> None:
    fs = fills((1, "buy", "10", "100"), (2, "sell", "10", "110"), (3, "buy", "1", "1"))
    # Opened at T0, closed at T0+1min; the window starts after the open.
    report = make_report(fs, {}, since=T0 + timedelta(seconds=30), until=T0 + timedelta(minutes=2))
    assert [t.net for t in report.round_trips] == [D(100)]
    assert [e.fill_id for e in report.executions] == [2]  # fill 3 is after `until`
    before = make_report(fs, {}, until=T0 + timedelta(seconds=30))
    assert before.round_trips == () and before.total.open_quantity == D(10)


def test_group_of_no_subscription_is_named() -> None:
    fs = fills((1, "buy", "1", "10"), subscription=None)
    assert [g.group for g in make_report(fs, {}).groups] == ["(none)"]


# (side, fill price, signal price, quantity, multiplier, role, money, bps)
SLIPPAGE = [
    ("buy above the signal is worse", "buy", "101", "100", "10", "1", "entry", "10", "100"),
    ("buy below the signal is better", "buy", "99.5", "100", "10", "1", "entry", "-5", "-50"),
    ("sell below the signal is worse", "sell", "99", "100", "2", "1", "exit", "2", "100"),
    ("sell above is better", "sell", "100.5", "100", "2", "1", "entry", "-1", "-50"),
    ("ES one tick worse, × 50", "buy", "5000.25", "5000", "2", "50", "entry", "25", "0.5"),
    (
        "a take-profit leg has no signal price",
        "sell",
        "110",
        "100",
        "1",
        "1",
        "take_profit",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("side", "price", "signal", "quantity", "multiplier", "role", "money", "bps"),
    [case[1:] for case in SLIPPAGE],
    ids=[case[0] for case in SLIPPAGE],
)
def test_slippage_is_signed_worse_positive(
    side, price, signal, quantity, multiplier, role, money, bps
) -> None:
    fill = ReportFill(
        1, 1, "paper", "X", Side(side), D(quantity), D(price), T0,
        multiplier=D(multiplier), role=role, signal_price=D(signal),
    )  # fmt: skip
    got = execution(fill)
    assert got.slippage == (D(money) if money else None)
    assert got.slippage_bps == (D(bps) if bps else None)


def test_latencies_from_the_alert_and_from_receipt() -> None:
    fill = ReportFill(
        1, 1, "paper", "X", Side.BUY, D(1), D(1), T0 + timedelta(seconds=2.5),
        alert_at=T0 - timedelta(seconds=1), received_at=T0,
        submitted_at=T0 + timedelta(milliseconds=40),
    )  # fmt: skip
    got = execution(fill)
    assert (got.alert_latency, got.submit_latency, got.fill_latency) == (1.0, 0.04, 2.5)


def test_percentiles_by_nearest_rank() -> None:
    assert percentiles([]).p50 is None
    got = percentiles([float(v) for v in range(1, 21)])  # 1 … 20
    assert (got.count, got.p50, got.p95) == (20, 10.0, 19.0)
    assert percentiles([7.0]).p95 == 7.0


@pytest.mark.parametrize(
    ("values", "drawdown"),
    [([], 0), ([10, 20, 30], 0), ([-5], 5), ([10, 4, 12, 1, 3], 11)],
)
def test_max_drawdown_starts_from_zero(values, drawdown) -> None:
    assert max_drawdown(D(v) for v in values) == D(drawdown)


# -- properties --------------------------------------------------------------------------------

_fill = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=500),  # price in quarter points
    st.integers(min_value=0, max_value=20),  # fee in cents
    st.sampled_from([None, "a", "b"]),
)


def _made(raw: list[tuple], multiplier: D) -> list[ReportFill]:
    return [
        ReportFill(
            n + 1,
            n + 1,
            "acct",
            "ESZ2026",
            Side(side),
            D(q),
            D(p) / 4,
            T0 + timedelta(seconds=n),
            sub,
            multiplier=multiplier,
            fee=D(fee) / 100,
        )
        for n, (side, q, p, fee, sub) in enumerate(raw)
    ]


@given(st.lists(_fill, max_size=30), st.sampled_from([D(1), D(50), D("0.5")]))
def test_matching_never_creates_or_loses_quantity(raw, multiplier) -> None:
    made = _made(raw, multiplier)
    matched = match_fills(made)
    closed = sum((t.quantity for t in matched.round_trips), D(0))
    still_open = sum((lot.quantity for lot in matched.open_lots), D(0))
    # Every closed unit took one unit of an opening fill and one of a closing fill.
    assert 2 * closed + still_open == sum((f.quantity for f in made), D(0))
    # What is open, signed (short < 0), is the fills' net; their fees are all accounted for.
    signed = sum((f.quantity * f.side.sign for f in made), D(0))
    held = [lot.quantity if lot.direction == "long" else -lot.quantity for lot in matched.open_lots]
    assert sum(held, D(0)) == signed
    fees = sum((f.fee for f in made), D(0))
    assert sum((t.fees for t in matched.round_trips), D(0)) + sum(
        (lot.fees for lot in matched.open_lots), D(0)
    ) == pytest.approx(fees, abs=D("1e-20"))


@given(st.lists(_fill, min_size=1, max_size=30), st.sampled_from([D(1), D(50), D("0.5")]))
def test_a_closed_sequence_realizes_sells_less_buys_times_multiplier_less_fees(raw, multiplier):
    # One subscription, then one last fill that brings it flat.
    raw = [(side, q, p, fee, "a") for side, q, p, fee, _ in raw]
    net = sum(q if side == "buy" else -q for side, q, _, _, _ in raw)
    if net:
        raw.append(("sell" if net > 0 else "buy", abs(net), 400, 7, "a"))
    made = _made(raw, multiplier)
    report = make_report(made, {})
    sells = sum((f.quantity * f.price for f in made if f.side is Side.SELL), D(0))
    buys = sum((f.quantity * f.price for f in made if f.side is Side.BUY), D(0))
    fees = sum((f.fee for f in made), D(0))
    assert report.open_lots == ()
    assert report.total.realized == pytest.approx(
        (sells - buys) * multiplier - fees, abs=D("1e-20")
    )


@pytest.mark.parametrize(
    ("ticker", "fee", "currency", "is_pair", "netted"),
    [
        ("AAPL", "1.25", "USD", False, "1.25"),  # IB: the account's money
        ("AAPL", None, None, False, "0"),  # Alpaca, paper: none reported
        ("BTC/USDT", "0.5", "USDT", True, "0.5"),
        ("BTCUSDT", "0.5", "USDT", True, "0.5"),
        ("BTC/USDT:USDT", "0.5", "usdt", True, "0.5"),
        ("BTC/USDT", "0.0001", "BTC", True, None),  # in the base coin: not converted
        ("BTCUSDT", "0.01", "BNB", True, None),
    ],
)
def test_a_fee_counts_when_it_is_in_the_instruments_money(ticker, fee, currency, is_pair, netted):
    got = netted_fee(ticker, D(fee) if fee else None, currency, is_pair=is_pair)
    assert got == (D(netted) if netted is not None else None)


@pytest.mark.parametrize(
    ("ticker", "overrides", "multiplier"),
    [
        ("AAPL", {}, "1"),
        ("ESZ2026", {}, "50"),
        ("MNQH27", {}, "2"),
        ("ES1!", {}, "50"),
        ("ZBZ2026", {"ZB": ContractSpec(D(1000), D("0.03125"))}, "1000"),
        ("ZBZ2026", {}, "1"),  # a root nobody configured
        ("SPY 261218C00600000", {}, "100"),
    ],
)
def test_unit_multiplier_from_the_tickers_form(ticker, overrides, multiplier) -> None:
    assert unit_multiplier(ticker, overrides) == D(multiplier)


@pytest.mark.parametrize(
    ("values", "width", "height", "lines"),
    [
        ([], 10, 2, []),
        ([0.0, 1.0], 10, 1, [" █"]),
        ([0.0, 0.5, 1.0], 10, 1, [" ▄█"]),
        ([0.0, 1.0], 10, 2, [" █", " █"]),
        ([0.0, 0.25, 1.0], 10, 2, ["  █", " ▄█"]),
        ([5.0, 5.0], 10, 2, ["", "██"]),  # flat: half way up
        ([float(v) for v in range(100)], 4, 1, [" ▃▅█"]),  # resampled to the width
    ],
)
def test_the_curve_is_drawn_in_eighth_blocks_from_the_bottom(values, width, height, lines):
    from tradepipe.cli.report_render import chart

    assert chart(values, width=width, height=height) == lines
