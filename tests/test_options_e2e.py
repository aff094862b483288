"""SPEC §15 end to end, as a user runs it: `tradepipe serve` as a subprocess, a chain given with
`tradepipe paper chain`, contracts priced with `tradepipe paper quote`, option signals through
`tradepipe send --wait` (a call entry, a reversal to a put, an exit, a put entry), and a
continuous future (`MES1!`) mapped to its front contract, the mapping shown by `signals show`."""

from __future__ import annotations

import json
import re
from datetime import date

from tests.helpers import Daemon, deliver, free_port, tradepipe, tradepipe_json, write_config

# Far enough ahead that the test keeps working for a while: 2028's March and April monthlies.
CHAIN_CSV = "expiration,right,strike\n" + "".join(
    f"{expiry},{right},{strike}\n"
    for expiry in ("2028-03-17", "2028-04-21")
    for right in ("call", "put")
    for strike in range(190, 215, 5)
)
CALL_205 = "AAPL 280317C00205000"
PUT_195 = "AAPL 280317P00195000"
PUT_190 = "AAPL 280317P00190000"


def aapl(action: str, option_type: str = "both", **more) -> dict:
    return {
        "ticker": "AAPL",
        "action": action,
        "optionType": option_type,
        "expiration": "2028-03-01",  # the nearest listed on or after it: 2028-03-17
        "strikesAway": 1,
        "quantity": 3,
        "signalPrice": 200,
        **more,
    }


def positions(config) -> dict[str, float]:
    return {p["ticker"]: p["quantity"] for p in tradepipe_json(config, "positions")}


def test_options_call_entry_reversal_exit_and_put_entry_through_serve(tmp_path):
    config = write_config(tmp_path)
    chain = tmp_path / "aapl-chain.csv"
    chain.write_text(CHAIN_CSV)
    with Daemon(config, free_port()):
        given = tradepipe(config, "paper", "chain", "paper", "AAPL", str(chain), "--json")
        assert json.loads(given.stdout)["contracts"] == 20
        shown = tradepipe(config, "paper", "chain", "paper", "AAPL", str(chain)).stdout
        assert "20 contracts, expirations 2028-03-17–2028-04-21, strikes 190–210" in shown
        for symbol, price in ((CALL_205, "4.10"), (PUT_195, "3.20"), (PUT_190, "2.05")):
            tradepipe(config, "paper", "quote", "paper", symbol, price)

        call = deliver(config, aapl("buy"))
        assert call["status"] == "submitted", call
        assert positions(config) == {CALL_205: 3}

        reversal = deliver(config, aapl("sell"))
        assert reversal["status"] == "submitted", reversal
        assert positions(config) == {PUT_195: 3}
        orders = tradepipe_json(config, "orders")
        legs = sorted((o["ticker"], o["side"], o["quantity"], o["status"]) for o in orders)
        assert legs == [
            (CALL_205, "buy", 3, "filled"),
            (CALL_205, "sell", 3, "filled"),
            (PUT_195, "buy", 3, "filled"),
        ]

        exit_ = deliver(config, aapl("exit"))
        assert exit_["status"] == "submitted", exit_
        assert positions(config) == {}

        put = deliver(config, aapl("buy", "put", strikesAway=2))  # 2 strikes OTM: 190
        assert put["status"] == "submitted", put
        assert positions(config) == {PUT_190: 3}

        nothing = deliver(config, aapl("sell", "call"))
        assert nothing["status"] == "skipped"
        assert "never sold short" in nothing["reason"]

        detail = tradepipe(config, "signals", "show", "1").stdout
        detail_json = json.loads(tradepipe(config, "signals", "show", "2", "--json").stdout)
    # signals show: the contract chosen and the chain facts that chose it
    flat = " ".join(detail.split())
    assert f"instrument: contract {CALL_205}: call 205 expiring 2028-03-17" in flat
    assert "strikesAway 1 out of the money → 205 (5 strikes 190–210)" in flat
    assert f"3 {CALL_205} market" in flat  # the order names its contract
    (delivery,) = detail_json["deliveries"]
    assert delivery["plan"]["facts"][0].startswith(f"contract {PUT_195}: put 195")


def test_a_continuous_future_buys_its_front_contract_through_serve(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        bought = deliver(
            config, {"ticker": "MES1!", "action": "buy", "quantity": 1, "signalPrice": 5000}
        )
        held = positions(config)
        shown = tradepipe(config, "signals", "show", "1").stdout
    assert bought["status"] == "submitted", bought
    flat = " ".join(shown.split())
    found = re.search(r"instrument: MES1! → (MES[HMUZ]20\d\d) \(expires (\d{4}-\d\d-\d\d);", flat)
    assert found, flat
    contract, expires = found[1], date.fromisoformat(found[2])
    assert held == {contract: 1}  # the dated contract is what is held, never "MES1!"
    assert (expires - date.today()).days > 2  # the roll: never within 2 days of expiry
    assert expires.weekday() == 4 and 15 <= expires.day <= 21  # a third Friday
    assert f"buy 1 {contract} ×5" in bought["reason"]


def test_a_bad_chain_file_is_refused_naming_the_row_and_changes_nothing(tmp_path):
    """Without a daemon the command runs in-process, with the same verb and the same words."""
    config = write_config(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("expiration,right,strike\n2028-03-17,call,200\n2028-03-17,straddle,200\n")
    refused = tradepipe(config, "paper", "chain", "paper", "AAPL", str(bad), check=False)
    assert refused.returncode == 2, refused
    assert "paper chain paper AAPL: contract 2: right 'straddle' is not call or put" in (
        refused.stdout + refused.stderr
    )
    missing = tradepipe(config, "paper", "chain", "paper", "AAPL", "nope.csv", check=False)
    assert missing.returncode == 2
    assert "cannot read the chain file nope.csv" in missing.stdout + missing.stderr
    stock = tradepipe(config, "paper", "chain", "nobody", "AAPL", str(bad), check=False)
    assert '"nobody" is not a paper account' in stock.stdout + stock.stderr
