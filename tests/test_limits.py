"""Account and subscription limits (SPEC §13) as pure decisions: tables and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.limits import (
    AccountFigures,
    AccountLimits,
    Allow,
    Amount,
    Deny,
    Figures,
    Limits,
    OrderCheck,
    Reduce,
    SubscriptionFigures,
    SubscriptionLimits,
    check_order,
    money,
    trips,
)
from tradepipe.core.model import Side

D = Decimal
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
NONE = AccountLimits(max_order_value=None, max_orders_per_minute=None)


def account(**changes) -> AccountFigures:
    values = {
        "equity": D(100_000),
        "day_start_equity": D(100_000),
        "high_water_mark": D(100_000),
        "positions": {},
        "orders_last_minute": 0,
    }
    return AccountFigures(**{**values, **changes})


def order(quantity="10", price="100", *, ticker="AAPL", is_entry=True, **changes) -> OrderCheck:
    return OrderCheck(
        ticker=ticker,
        side=Side.BUY,
        quantity=D(quantity),
        price=D(price),
        is_entry=is_entry,
        **changes,
    )


def decide(check, *, figures=None, subscription=None, now=NOW, **limits):
    sub_limits = {k: limits.pop(k) for k in list(limits) if k in SubscriptionLimits.__slots__}
    return check_order(
        check,
        Figures(figures or account(), subscription or SubscriptionFigures()),
        Limits(AccountLimits(**limits), SubscriptionLimits(**sub_limits)),
        now,
    )


def text(decision) -> str:
    if isinstance(decision, Allow):
        return "allow"
    if isinstance(decision, Reduce):
        return f"reduce {decision.quantity}: {decision.reason}"
    return f"deny: {decision.reason}"


ROWS = [
    # max_order_value: a fat finger is denied whole, never shrunk
    (
        "order-value-default-100pct-fits",
        order("1000", "100"),
        {},
        {},
        "allow",
    ),
    (
        "order-value-default-100pct-denies",
        order("1001", "100"),
        {},
        {},
        "deny: max_order_value 100% = 100,000: this order is worth 100,100 (1001 × 100)",
    ),
    (
        "order-value-with-multiplier",
        order("1", "5000", ticker="ES", multiplier=D(50)),
        {"max_order_value": Amount(D(200_000))},
        {},
        "deny: max_order_value 200,000: this order is worth 250,000 (1 × 5,000 × 50)",
    ),
    (
        "order-value-exit-passes",
        order("5000", "100", is_entry=False),
        {},
        {},
        "allow",
    ),
    # max_gross_exposure: an entry is reduced to what fits, rounded down to the lot
    (
        "exposure-the-issue-example",
        order("112", "100", ticker="MSFT"),
        {"max_gross_exposure": Amount(D(50_000))},
        {"positions": {"AAPL": D(50_000)}},
        "deny: max_gross_exposure 50,000: this entry would bring it to 61,200"
        " (it is at 50,000: not one lot fits)",
    ),
    (
        "exposure-reduces",
        order("112", "100", ticker="MSFT"),
        {"max_gross_exposure": Amount(D(50_000))},
        {"positions": {"AAPL": D(38_850)}},
        "reduce 111: max_gross_exposure 50,000: this entry would bring it to 50,050;"
        " reduced from 112 to 111",
    ),
    (
        "exposure-counts-shorts-as-exposure",
        order("20", "100", ticker="MSFT"),
        {"max_gross_exposure": Amount(D(10_000))},
        {"positions": {"AAPL": D(-9_000)}},
        "reduce 10: max_gross_exposure 10,000: this entry would bring it to 11,000;"
        " reduced from 20 to 10",
    ),
    (
        "exposure-rounds-to-the-lot",
        order("1", "30000", ticker="BTC/USD", lot_size=D("0.001")),
        {"max_gross_exposure": Amount(D(10_000))},
        {},
        "reduce 0.333: max_gross_exposure 10,000: this entry would bring it to 30,000;"
        " reduced from 1 to 0.333",
    ),
    (
        "exposure-percent-of-day-start",
        order("300", "100"),
        {"max_gross_exposure": Amount(D(20), is_percent=True)},
        {"day_start_equity": D(80_000), "equity": D(79_000)},
        "reduce 160: max_gross_exposure 20% = 16,000: this entry would bring it to 30,000;"
        " reduced from 300 to 160",
    ),
    (
        "exposure-exit-passes-even-over-it",
        order("100", "100", is_entry=False),
        {"max_gross_exposure": Amount(D(1_000))},
        {"positions": {"AAPL": D(60_000)}},
        "allow",
    ),
    # max_open_positions: only an entry into a new ticker
    (
        "open-positions-new-ticker-denied",
        order(ticker="TSLA"),
        {"max_open_positions": 2},
        {"positions": {"AAPL": D(1_000), "MSFT": D(-1_000)}},
        "deny: max_open_positions 2: this entry into TSLA would bring it to 3"
        " (AAPL, MSFT are open)",
    ),
    (
        "open-positions-add-to-held-ticker-passes",
        order(ticker="AAPL"),
        {"max_open_positions": 2},
        {"positions": {"AAPL": D(1_000), "MSFT": D(-1_000)}},
        "allow",
    ),
    (
        "open-positions-flat-entry-does-not-count",
        order(ticker="TSLA"),
        {"max_open_positions": 2},
        {"positions": {"AAPL": D(1_000), "MSFT": D(0)}},
        "allow",
    ),
    # max_daily_loss, max_drawdown: reached → entries denied (the trip sets the state too)
    (
        "daily-loss-reached",
        order(),
        {"max_daily_loss": Amount(D(2), is_percent=True)},
        {"equity": D(97_850)},
        "deny: max_daily_loss 2% = 2,000: the day's loss is 2,150",
    ),
    (
        "daily-loss-not-yet",
        order(),
        {"max_daily_loss": Amount(D(2_000))},
        {"equity": D("98000.01")},
        "allow",
    ),
    (
        "drawdown-reached",
        order(),
        {"max_drawdown": Amount(D(5_000))},
        {"high_water_mark": D(110_000), "equity": D(104_999.5)},
        "deny: max_drawdown 5,000: the drawdown is 5,000.50",
    ),
    # max_orders_per_minute (default 60)
    (
        "orders-per-minute-default-60",
        order(),
        {},
        {"orders_last_minute": 60},
        "deny: max_orders_per_minute 60: 60 orders were sent in the last minute",
    ),
    (
        "orders-per-minute-59-passes",
        order(),
        {},
        {"orders_last_minute": 59},
        "allow",
    ),
    (
        "orders-per-minute-exit-passes",
        order(is_entry=False),
        {},
        {"orders_last_minute": 600},
        "allow",
    ),
]


@pytest.mark.parametrize(
    ("check", "limits", "figures", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_check_order_account_limits(check, limits, figures, expected):
    assert text(decide(check, figures=account(**figures), **limits)) == expected


LOSS_AT = NOW - timedelta(seconds=600)
SUBSCRIPTION_ROWS = [
    (
        "trades-per-day-reached",
        {"max_trades_per_day": 3},
        SubscriptionFigures(trades_today=3),
        "deny: max_trades_per_day 3: 3 trades today already",
    ),
    (
        "trades-per-day-room",
        {"max_trades_per_day": 3},
        SubscriptionFigures(trades_today=2),
        "allow",
    ),
    (
        "losses-in-cooldown",
        {"max_consecutive_losses": 3, "loss_cooldown": 900},
        SubscriptionFigures(consecutive_losses=3, last_loss_at=LOSS_AT),
        "deny: max_consecutive_losses 3: 3 losses in a row; loss_cooldown 900 s ends at"
        " 2026-12-04T15:05:00+00:00 (in 300 s)",
    ),
    (
        "losses-cooldown-over",
        {"max_consecutive_losses": 3, "loss_cooldown": 600},
        SubscriptionFigures(consecutive_losses=3, last_loss_at=LOSS_AT),
        "allow",
    ),
    (
        "losses-below-limit",
        {"max_consecutive_losses": 3, "loss_cooldown": 900},
        SubscriptionFigures(consecutive_losses=2, last_loss_at=LOSS_AT),
        "allow",
    ),
    (
        "losses-no-cooldown-until-resume",
        {"max_consecutive_losses": 3},
        SubscriptionFigures(consecutive_losses=4, last_loss_at=LOSS_AT),
        "deny: max_consecutive_losses 3: 4 losses in a row (entries resume with"
        " `tradepipe resume`)",
    ),
]


@pytest.mark.parametrize(
    ("limits", "subscription", "expected"),
    [row[1:] for row in SUBSCRIPTION_ROWS],
    ids=[row[0] for row in SUBSCRIPTION_ROWS],
)
def test_check_order_subscription_limits(limits, subscription, expected):
    assert text(decide(order(), subscription=subscription, **limits)) == expected


def test_subscription_limits_let_exits_pass():
    exit_ = order(is_entry=False)
    busy = SubscriptionFigures(trades_today=9, consecutive_losses=9, last_loss_at=NOW)
    limits = {"max_trades_per_day": 1, "max_consecutive_losses": 1, "loss_cooldown": 900}
    assert decide(exit_, subscription=busy, **limits) == Allow()


def test_denial_comes_before_a_reduce():
    # The exposure would only reduce it, but the fat-finger limit refuses the order whole.
    decision = decide(
        order("2000", "100"),
        max_gross_exposure=Amount(D(1_000)),
    )
    assert isinstance(decision, Deny) and decision.reason.startswith("max_order_value")


TRIP_ROWS = [
    (
        "daily-loss",
        AccountLimits(max_daily_loss=Amount(D(2_000))),
        {"equity": D(98_000)},
        [
            (
                "max_daily_loss",
                "max_daily_loss 2,000: the day's loss is 2,000 (equity 98,000,"
                " 100,000 at the day's start)",
                True,
            )
        ],
    ),
    (
        "drawdown-percent",
        AccountLimits(max_drawdown=Amount(D(10), is_percent=True)),
        {"high_water_mark": D(120_000), "equity": D(105_000), "day_start_equity": D(100_000)},
        [
            (
                "max_drawdown",
                "max_drawdown 10% = 10,000: the drawdown is 15,000 (equity 105,000,"
                " high-water mark 120,000)",
                False,
            )
        ],
    ),
    (
        "order-rate",
        AccountLimits(),
        {"orders_last_minute": 61},
        [
            (
                "max_orders_per_minute",
                "max_orders_per_minute 60: 61 orders were sent in the last minute",
                False,
            )
        ],
    ),
    ("nothing-reached", AccountLimits(max_daily_loss=Amount(D(2_000))), {"equity": D(98_001)}, []),
    ("no-limits", NONE, {"equity": D(1), "orders_last_minute": 10_000}, []),
]


@pytest.mark.parametrize(
    ("limits", "figures", "expected"),
    [row[1:] for row in TRIP_ROWS],
    ids=[row[0] for row in TRIP_ROWS],
)
def test_trips(limits, figures, expected):
    found = trips(account(**figures), limits)
    assert [(t.limit, t.reason, t.ends_at_day_start) for t in found] == expected


def test_trip_carries_its_figures():
    (trip,) = trips(account(equity=D(97_000)), AccountLimits(max_daily_loss=Amount(D(2_000))))
    assert trip.figures == {
        "limit": D(2_000),
        "loss": D(3_000),
        "equity": D(97_000),
        "day_start_equity": D(100_000),
    }


@pytest.mark.parametrize(
    ("setting", "amount"),
    [
        ("100%", Amount(D(100), True)),
        ("2.5 %", Amount(D("2.5"), True)),
        (50000, Amount(D(50_000))),
        ("50,000", Amount(D(50_000))),
        ("50_000.5", Amount(D("50000.5"))),
    ],
)
def test_amount_parse(setting, amount):
    assert Amount.parse(setting) == amount


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lots", '"lots" must be an amount like 50000 or a share like "2%"'),
        ("0%", '"0%" must be more than 0'),
        (-5, '"-5" must be more than 0'),
        ("NaN", '"NaN" must be more than 0'),
    ],
)
def test_amount_parse_rejects(setting, message):
    with pytest.raises(ValueError, match=message):
        Amount.parse(setting)


def test_money_separates_thousands():
    assert [money(D(v)) for v in ("61200", "5E+4", "1234567.891", "0.5")] == [
        "61,200",
        "50,000",
        "1,234,567.89",
        "0.50",
    ]


# Properties: the decisions never let an order break a limit.

amounts = st.decimals(min_value=D(1), max_value=D(1_000_000), places=2)
quantities = st.decimals(min_value=D("0.001"), max_value=D(10_000), places=3)
lots = st.sampled_from([D(1), D("0.01"), D("0.001"), D(100)])
optional_amount = (
    st.none()
    | amounts.map(Amount)
    | st.decimals(min_value=D(1), max_value=D(300), places=1).map(
        lambda v: Amount(v, is_percent=True)
    )
)


@st.composite
def cases(draw, *, only_exposure: bool = False):
    maybe = st.none() if only_exposure else st.none() | st.integers(0, 8)
    limits = AccountLimits(
        max_order_value=None if only_exposure else draw(optional_amount),
        max_open_positions=draw(maybe),
        max_gross_exposure=None if only_exposure else draw(optional_amount),
        max_daily_loss=None if only_exposure else draw(optional_amount),
        max_drawdown=None if only_exposure else draw(optional_amount),
        max_orders_per_minute=None if only_exposure else draw(st.none() | st.integers(0, 100)),
    )
    tickers = draw(st.lists(st.sampled_from(["A", "B", "C", "D", "E", "F"]), unique=True))
    start = draw(amounts)
    # Equity near the day's start, as it is on most days.
    equity = start + draw(st.decimals(min_value=-5_000, max_value=5_000, places=2))
    figures = AccountFigures(
        equity=equity,
        day_start_equity=start,
        high_water_mark=max(equity, start) + draw(st.decimals(0, 5_000, places=2)),
        positions={t: draw(st.decimals(-50_000, 50_000, places=2)) for t in tickers},
        orders_last_minute=draw(st.integers(0, 70)),
    )
    if only_exposure:  # some room left under the limit, often less than the order
        room = draw(st.decimals(min_value=0, max_value=100_000, places=2))
        limits = replace(limits, max_gross_exposure=Amount(figures.gross_exposure + room))
    check = OrderCheck(
        ticker=draw(st.sampled_from(["A", "B", "G"])),
        side=draw(st.sampled_from(Side)),
        quantity=draw(quantities),
        price=draw(st.decimals(min_value=D("0.01"), max_value=D(1_000), places=2)),
        is_entry=draw(st.sampled_from([True, True, True, False])),
        multiplier=draw(st.sampled_from([D(1), D(50), D("0.1")])),
        lot_size=draw(lots),
    )
    return check, figures, limits


def broken_limits(check: OrderCheck, figures: AccountFigures, limits: AccountLimits) -> list[str]:
    """Every account limit this entry, if sent as is, would break (checked independently)."""
    start = figures.day_start_equity
    broken = []
    if limits.max_order_value and check.value > limits.max_order_value.resolve(start):
        broken.append("max_order_value")
    if limits.max_gross_exposure and (
        figures.gross_exposure + check.value > limits.max_gross_exposure.resolve(start)
    ):
        broken.append("max_gross_exposure")
    opened = {t for t, v in figures.positions.items() if v != 0}
    most = limits.max_open_positions
    if most is not None and check.ticker not in opened and len(opened) + 1 > most:
        broken.append("max_open_positions")
    if limits.max_daily_loss and figures.daily_loss >= limits.max_daily_loss.resolve(start):
        broken.append("max_daily_loss")
    if limits.max_drawdown and figures.drawdown >= limits.max_drawdown.resolve(start):
        broken.append("max_drawdown")
    rate = limits.max_orders_per_minute
    if rate is not None and figures.orders_last_minute + 1 > rate:
        broken.append("max_orders_per_minute")
    return broken


@given(cases() | cases(only_exposure=True))
def test_no_allowed_entry_breaks_a_limit(case):
    check, figures, limits = case
    decision = check_order(check, Figures(figures), Limits(limits), NOW)
    if not check.is_entry:
        assert decision == Allow()  # exits lower risk: always pass
        return
    if isinstance(decision, Allow):
        assert broken_limits(check, figures, limits) == []
    elif isinstance(decision, Reduce):
        reduced = OrderCheck(**{**_fields(check), "quantity": decision.quantity})
        assert broken_limits(reduced, figures, limits) == []
    else:
        assert broken_limits(check, figures, limits) != []
        assert decision.reason.split(" ", 1)[0] in broken_limits(check, figures, limits)


@given(cases(only_exposure=True))
def test_a_reduce_never_grows_the_order_and_keeps_to_the_lot(case):
    check, figures, limits = case
    decision = check_order(check, Figures(figures), Limits(limits), NOW)
    if isinstance(decision, Reduce):
        assert 0 < decision.quantity < check.quantity
        assert decision.quantity % check.lot_size == 0
        assert decision.reason.startswith("max_gross_exposure ")


def _fields(check: OrderCheck) -> dict:
    return {name: getattr(check, name) for name in OrderCheck.__slots__}
