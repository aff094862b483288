"""SPEC §12 end to end: `tradepipe serve` as a subprocess, a futures signal through
`tradepipe send --wait`, the orders and position read back through the CLI. A risk of $500
with a 10-point stop on ES is 1 contract, never 50."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Daemon, deliver, free_port, tradepipe, tradepipe_json, write_config

# Paper pays for a future in full (no margin): one ES at 5000 is 250,000 of cash.
RICH = "cash = 100000\n"


def es_signal(ticker: str) -> dict:
    return {
        "ticker": ticker,
        "action": "buy",
        "quantity": 500,
        "quantityType": "risk_dollar_amount",
        "signalPrice": 5000,
        "stopLoss": {"amount": 10},
    }


@pytest.mark.parametrize(
    ("ticker", "instruments", "contracts", "words"),
    [
        ("ESZ2026", "", 1, "enter long 1 (buy 1 ESZ2026 ×50) with stop-loss stop at 4990"),
        ("CME_MINI:ESZ26", "", 1, "enter long 1 (buy 1 ESZ26 ×50)"),
        ("MESZ2026", "", 10, "enter long 10 (buy 10 MESZ2026 ×5)"),
        # the account's table overrides the root: ES at 5 per point is 10 contracts
        ("ESZ2026", "[accounts.paper.instruments.ES]\nmultiplier = 5\n", 10, "×5)"),
    ],
    ids=["es", "es-prefixed-short-year", "mes", "es-overridden"],
)
def test_risk_sizing_of_a_future_counts_its_point_value(
    tmp_path, ticker, instruments, contracts, words
):
    config = write_config(tmp_path, account=instruments)
    config.write_text(config.read_text().replace(RICH, "cash = 1000000\n"))
    with Daemon(config, free_port()):
        delivery = deliver(config, es_signal(ticker))
        orders = {o["role"]: o for o in tradepipe_json(config, "orders")}
        positions = tradepipe_json(config, "positions")
    assert delivery["status"] == "submitted", delivery
    assert words in delivery["reason"]
    entry, stop = orders["entry"], orders["stop_loss"]
    assert (entry["quantity"], entry["status"]) == (contracts, "filled")
    assert (stop["quantity"], stop["stop_price"]) == (contracts, 4990)
    assert [p["quantity"] for p in positions] == [contracts]


def test_a_future_the_paper_broker_cannot_value_is_never_traded(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        delivery = deliver(config, es_signal("ZBZ2026"))
        assert tradepipe_json(config, "orders") == []
        assert tradepipe_json(config, "positions") == []
        shown = tradepipe(config, "signals", "show", "1").stdout
    assert delivery["status"] == "failed", delivery
    assert "ZBZ2026 is a future of ZB, whose multiplier the paper broker does not know" in (
        delivery["reason"]
    )
    assert "config table accounts.paper.instruments.ZB" in shown


def test_the_summary_json_names_the_contract_worth(tmp_path):
    """`signals show --json` carries the plan's summary, instrument included."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(RICH, "cash = 1000000\n"))
    with Daemon(config, free_port()):
        deliver(config, es_signal("ESZ2026"))
        shown = json.loads(tradepipe(config, "signals", "show", "1", "--json").stdout)
    assert "buy 1 ESZ2026 ×50" in json.dumps(shown, ensure_ascii=False)
