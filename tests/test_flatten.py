"""`tradepipe flatten`: cancel, then close — through the daemon and on its own."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from tests.helpers import Daemon, free_port, tradepipe, tradepipe_json, write_config
from tests.test_engine import BRACKET, Harness, run
from tradepipe.brokers.paper.broker import Fault, PaperBroker
from tradepipe.errors import BrokerError, BrokerUnavailable


def test_flatten_cancels_the_bracket_then_closes_the_position(tmp_path):
    async def test(h: Harness):
        await h.send(BRACKET)
        await h.send({"ticker": "MSFT", "action": "sell", "quantity": 2, "signalPrice": 50})
        (aapl,) = await h.engine.flatten("paper", "AAPL")
        assert len(aapl["canceled"]) == 2  # the take-profit and the stop
        assert aapl["closed"]["side"] == "sell" and aapl["closed"]["status"] == "filled"
        assert h.position("AAPL") == 0 and h.position("MSFT") == -2  # the scope held
        assert await h.engine.brokers["paper"].open_orders() == []
        (msft,) = await h.engine.flatten()
        assert (msft["ticker"], msft["closed"]["side"]) == ("MSFT", "buy")
        assert h.position("MSFT") == 0
        assert await h.engine.flatten() == []  # nothing left: nothing done
        operator = [e for e in h.journal.events() if e["kind"] == "operator"]
        assert [json.loads(e["detail"])["action"] for e in operator] == ["flatten"] * 3

    run(write_config(tmp_path), test)


def test_flatten_through_the_cli_with_and_without_a_daemon(tmp_path):
    config = write_config(tmp_path)
    buy = {"ticker": "AAPL", "action": "buy", "quantity": 3, "signalPrice": 20}
    tradepipe(config, "send", json.dumps(buy))
    refused = tradepipe(config, "flatten", check=False)  # no terminal, no --yes
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert tradepipe_json(config, "positions")[0]["quantity"] == 3
    done = json.loads(tradepipe(config, "flatten", "--yes", "--json").stdout)
    assert [(f["ticker"], f["closed"]["status"]) for f in done["flattened"]] == [("AAPL", "filled")]
    assert tradepipe_json(config, "positions") == []
    tradepipe(config, "send", json.dumps(buy | {"signalPrice": 21}))
    with Daemon(config, free_port()):
        text = tradepipe(config, "flatten", "--account", "paper", "--yes").stdout
        assert "paper AAPL: 0 orders canceled; sell 3 → filled" in text
        assert tradepipe_json(config, "positions") == []
        unknown = tradepipe(config, "flatten", "--account", "nope", "--yes", check=False)
        assert unknown.returncode == 1 and 'no account "nope"' in unknown.stderr


async def restart(h: Harness) -> None:
    await h.engine.stop()
    h.engine = h.new_engine()
    await h.engine.start()
    await h.engine.drain()


def _closing(h: Harness) -> dict:
    (order,) = [o for o in h.journal.orders() if o["signal_id"] is None]
    return order


def test_a_flatten_a_crash_interrupted_is_settled_by_lookup_never_sent_twice(tmp_path):
    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 10})
        h.engine.brokers["paper"].inject(Fault.TIMEOUT, "read timeout")  # sent, answer lost
        with pytest.raises(BrokerUnavailable):
            await h.engine.flatten("paper", "AAPL")
        # What a kill -9 between the broker's fill and the journal leaves:
        h.journal.update_order(_closing(h)["client_order_id"], status="submitting")
        await restart(h)
        assert _closing(h)["status"] == "filled" and h.position() == 0
        paper = h.journal.conn.execute("SELECT count(*) FROM paper_orders").fetchone()[0]
        assert paper == 2  # the buy and one close

    run(write_config(tmp_path), test)


def test_a_flatten_that_never_reached_the_broker_is_reported_not_resent(tmp_path):
    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 10})
        h.engine.brokers["paper"].inject(Fault.DROP, "connection reset")
        with pytest.raises(BrokerUnavailable):
            await h.engine.flatten("paper", "AAPL")
        h.journal.update_order(_closing(h)["client_order_id"], status="submitting")
        await restart(h)
        assert _closing(h)["status"] == "unknown"  # too soon to believe "no such order"
        h.clock.advance(61)
        await restart(h)
        closing = _closing(h)
        assert closing["status"] == "canceled"
        assert closing["broker_message"].startswith("never reached the broker")
        assert h.position() == 5  # still open: the operator sees it and flattens again

    run(write_config(tmp_path), test)


class RefusingPaper(PaperBroker):
    """The real paper broker, whose new orders meet a refusal that is no order rejection (a
    401 after a key was revoked): the order's fate is unknown to tradepipe."""

    refuse = False

    async def submit_bracket(self, entry, children):
        if self.refuse:
            raise BrokerError("401 Unauthorized: the API key was revoked")
        return await super().submit_bracket(entry, children)


class RefusingHarness(Harness):
    def new_engine(self):
        engine = super().new_engine()
        engine.brokers = {
            "paper": RefusingPaper("paper", self.journal, cash=D(100000), clock=self.clock)
        }
        return engine


def test_a_flatten_order_refused_by_the_broker_is_journaled_of_unknown_fate(tmp_path):
    """Not left 'submitting' for the daemon's life (nothing settles that before a restart):
    unknown, with the broker's words, and settled by lookup like any lost answer."""

    async def test(h: Harness):
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        h.engine.brokers["paper"].refuse = True
        with pytest.raises(BrokerError, match="401"):
            await h.engine.flatten("paper", "AAPL")
        (close,) = [o for o in h.journal.orders() if o["signal_id"] is None]
        assert close["status"] == "unknown" and "401" in close["broker_message"]
        assert h.journal.unknown_orders("paper", "AAPL") == [close]

    run(write_config(tmp_path), test, RefusingHarness)
