"""SIGHUP re-reads the config (SPEC §11): a real `tradepipe serve`, its file edited under it."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from decimal import Decimal

from tests.helpers import (
    OTHER_TOKEN,
    TOKEN,
    Daemon,
    deliver,
    free_port,
    on_disk,
    tradepipe_json,
    wait_for,
    write_config,
)
from tests.test_engine import Harness, run
from tradepipe.brokers.paper.broker import Fault, PaperBroker
from tradepipe.config import load_config
from tradepipe.daemon.reloading import Reloader, config_changes, describe_changes

NEW_TOKEN = "tok_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"
FIXED_QUANTITY = "use_signal_quantity = false\nquantity = {}\n"
SWING = f"""
[strategies.swing]
token = "{OTHER_TOKEN}"

[subscriptions.swing-paper]
strategy = "swing"
account = "paper"
"""


def post(daemon: Daemon, token: str, payload: dict) -> int:
    request = urllib.request.Request(
        f"{daemon.url}/webhook/{token}", data=json.dumps(payload).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def reloads(config) -> list[dict]:
    """The reload events of the audit trail, oldest first."""
    rows = on_disk(
        config.parent / "journal.db",
        "SELECT detail FROM events WHERE kind = 'operator' ORDER BY id",
    )
    details = [json.loads(detail) for (detail,) in rows]
    return [d for d in details if d["action"].startswith("config reload")]


def buy(ticker: str) -> dict:
    return {"ticker": ticker, "action": "buy", "signalPrice": 100}


def test_sighup_applies_an_edited_config_to_the_next_signals_without_a_restart(tmp_path):
    config = write_config(tmp_path, subscription=FIXED_QUANTITY.format(3))
    with Daemon(config, free_port()) as daemon:
        assert deliver(config, buy("AAPL"))["status"] == "submitted"
        assert post(daemon, OTHER_TOKEN, buy("MSFT")) == 404  # no strategy swing yet

        # trend gets a new token and a new quantity; strategy swing is added.
        write_config(tmp_path, subscription=FIXED_QUANTITY.format(7), extra=SWING)
        config.write_text(config.read_text().replace(TOKEN, NEW_TOKEN))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads(config), what="the reload event")

        assert daemon.process.poll() is None  # SIGHUP used to kill it
        assert post(daemon, OTHER_TOKEN, buy("MSFT")) == 200  # the new strategy's URL
        assert post(daemon, TOKEN, buy("MSFT")) == 404  # trend's old URL is gone
        assert post(daemon, NEW_TOKEN, buy("NVDA")) == 200  # its new URL
        wait_for(lambda: len(tradepipe_json(config, "orders")) == 3, what="three orders")
        orders = {o["ticker"]: o for o in tradepipe_json(config, "orders")}
        assert Decimal(str(orders["AAPL"]["quantity"])) == 3  # before the reload
        assert Decimal(str(orders["NVDA"]["quantity"])) == 7  # the edited quantity
        assert orders["MSFT"]["account"] == "paper"  # swing-paper delivered it
        output = daemon.stop()
    assert daemon.process.returncode == 0, output
    (event,) = reloads(config)
    assert event["action"] == "config reload"
    assert event["summary"] == (
        "strategies +1 -0 ~1 (+swing, ~trend), subscriptions +1 -0 ~1 (+swing-paper,"
        " ~trend-paper), accounts +0 -0 ~0"
    )
    assert "config reloaded: strategies +1" in output
    assert NEW_TOKEN not in output and OTHER_TOKEN not in output


def test_an_invalid_edit_is_refused_logged_and_the_running_config_keeps_working(tmp_path):
    config = write_config(tmp_path, subscription=FIXED_QUANTITY.format(3))
    journal = tmp_path / "journal.db"
    with Daemon(config, free_port()) as daemon:
        write_config(tmp_path, subscription=FIXED_QUANTITY.format(7) + "quantiy = 5\n")
        daemon.process.send_signal(signal.SIGHUP)
        (event,) = wait_for(lambda: reloads(config), what="the refusal event")
        assert daemon.process.poll() is None
        assert post(daemon, TOKEN, buy("AAPL")) == 200  # (the CLI cannot read the file now)
        orders = wait_for(lambda: on_disk(journal, "SELECT ticker, quantity FROM orders"))
        assert orders == [("AAPL", "3")]  # the running config, not the edit
        output = daemon.stop()
    assert event["action"] == "config reload refused"
    assert 'unknown key "quantiy"' in event["errors"]
    assert "config reload refused; the running config stays" in output
    assert "quantity" in output and "quantiy" in output  # the error and its suggestion


def test_a_reload_that_names_missing_credentials_is_refused(tmp_path):
    config = write_config(tmp_path)
    with Daemon(config, free_port()) as daemon:
        write_config(tmp_path, account='[accounts.live]\nbroker = "alpaca"\npaper = true\n')
        daemon.process.send_signal(signal.SIGHUP)
        (event,) = wait_for(lambda: reloads(config), what="the refusal event")
        assert daemon.process.poll() is None
        assert deliver(config, buy("AAPL"))["status"] == "submitted"  # still serving
        daemon.stop()
    assert event["action"] == "config reload refused"
    assert "live" in event["errors"] and "TRADEPIPE_LIVE_KEY" in event["errors"]


def test_deliveries_dispatched_before_a_reload_keep_the_config_they_started_with(tmp_path):
    path = write_config(tmp_path, subscription=FIXED_QUANTITY.format(3))

    async def test(h: Harness):
        # Hold AAPL's lane so the first signal is dispatched but not yet delivered.
        gate = asyncio.Event()
        held = asyncio.create_task(h.engine.in_lane("paper", "AAPL", gate.wait))
        await asyncio.sleep(0.05)
        first_id, first = h.journal_signal(buy("AAPL"))
        h.engine.enqueue(first_id, "trend", first)
        while not h.journal.deliveries_for([first_id]):
            await asyncio.sleep(0.01)

        write_config(tmp_path, subscription=FIXED_QUANTITY.format(7))
        h.engine.reload.use_config(load_config(path), h.engine.brokers)
        second_id, second = h.journal_signal(buy("MSFT"))
        h.engine.enqueue(second_id, "trend", second)
        gate.set()
        await held
        await h.engine.drain()

        quantities = {
            signal_id: [o["quantity"] for o in h.journal.orders(signal_id=signal_id)]
            for signal_id in (first_id, second_id)
        }
        assert quantities == {first_id: ["3"], second_id: ["7"]}

    run(path, test)


def test_a_delivery_for_an_account_a_reload_removed_fails_saying_so(tmp_path):
    path = write_config(tmp_path)

    async def test(h: Harness):
        gate = asyncio.Event()
        held = asyncio.create_task(h.engine.in_lane("paper", "AAPL", gate.wait))
        await asyncio.sleep(0.05)
        signal_id, parsed = h.journal_signal(buy("AAPL"))
        h.engine.enqueue(signal_id, "trend", parsed)
        while not h.journal.deliveries_for([signal_id]):
            await asyncio.sleep(0.01)
        replaced = h.engine.reload.use_config(h.config, {})
        assert list(replaced) == ["paper"]
        gate.set()
        await held
        await h.engine.drain()
        assert h.deliveries(signal_id) == [
            ("failed", 'account "paper" was removed from the config by a reload; nothing sent')
        ]
        assert h.journal.orders(signal_id=signal_id) == []

    run(path, test)


def test_config_changes_name_what_was_added_removed_and_changed(tmp_path):
    old = load_config(write_config(tmp_path, subscription=FIXED_QUANTITY.format(3)))
    new = load_config(write_config(tmp_path, subscription=FIXED_QUANTITY.format(7), extra=SWING))
    changes = config_changes(old, new)
    assert changes["strategies"] == {"added": ["swing"], "removed": [], "changed": []}
    assert changes["subscriptions"] == {
        "added": ["swing-paper"],
        "removed": [],
        "changed": ["trend-paper"],
    }
    assert describe_changes(config_changes(new, old)) == (
        "strategies +0 -1 ~0 (-swing), subscriptions +0 -1 ~1 (-swing-paper, ~trend-paper),"
        " accounts +0 -0 ~0"
    )


class ClosingPaper(PaperBroker):
    """The paper broker with IB's close(): nothing answers on it afterwards."""

    async def close(self) -> None:
        self.inject(Fault.DOWN, "closed by the reload")


class Listening:
    """The webhook and the operator as a reload sees them: they take the new config."""

    config = None

    def use_config(self, config) -> None:
        self.config = config


REVERSAL_BY_LIMIT = (
    'exit_order_type = "limit"\nexit_fill_timeout = 5\nuse_signal_order_type = false\n'
)


def test_a_reload_that_changes_only_what_the_engine_reads_keeps_the_connection(tmp_path):
    # Adding allow_leverage replaced (closed) the account's broker under a reversal waiting for
    # its exit fill: the delivery failed "lost paper ... no entry was sent" (review finding)
    path = write_config(tmp_path, subscription=REVERSAL_BY_LIMIT)

    async def test(h: Harness):
        before = h.engine.brokers["paper"]
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        reversal = {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 100}
        sending = asyncio.create_task(h.send(reversal | {"limitPrice": 120}))
        await asyncio.sleep(0.1)  # the exit rests at 120
        text = path.read_text().replace("cash = 100000", "cash = 100000\nallow_leverage = true")
        path.write_text(text)
        listening = Listening()
        reloader = Reloader(
            h.config,
            journal=h.journal,
            engine=h.engine,
            webhook=listening,
            actions=listening,
            clock=h.clock,
        )
        assert await reloader.reload()
        assert h.engine.brokers["paper"] is before
        assert h.engine.config.accounts["paper"].allow_leverage is True
        await before.observe_price("AAPL", Decimal(120))  # the exit fills
        (sell,) = await asyncio.wait_for(sending, 5)
        assert h.deliveries(sell)[0][0] == "submitted"
        assert h.position() == -5

    run(path, test)


def test_queued_work_finishes_with_the_broker_it_started_with_before_a_reload_closes_it(tmp_path):
    path = write_config(tmp_path, subscription=REVERSAL_BY_LIMIT)

    async def test(h: Harness):
        def closing() -> ClosingPaper:
            return ClosingPaper("paper", h.journal, cash=Decimal(100000), clock=h.clock)

        old = closing()
        await old.connect()
        h.engine.reload.use_config(h.config, {"paper": old})
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        reversal = {"ticker": "AAPL", "action": "sell", "quantity": 5, "signalPrice": 100}
        sending = asyncio.create_task(h.send(reversal | {"limitPrice": 120}))
        await asyncio.sleep(0.1)  # the exit rests at 120; the delivery waits for its fill
        replaced = h.engine.reload.use_config(h.config, {"paper": closing()})
        reconnecting = asyncio.create_task(h.engine.reload.connect_replaced(replaced, ["paper"]))
        await asyncio.sleep(0.1)
        assert not reconnecting.done()  # the old connection stays while the reversal waits
        await old.observe_price("AAPL", Decimal(120))
        (sell,) = await asyncio.wait_for(sending, 5)
        await asyncio.wait_for(reconnecting, 5)
        assert h.deliveries(sell)[0][0] == "submitted"
        assert h.position() == -5

    run(path, test)
