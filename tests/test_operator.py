"""The operator's verbs have one typed API (engine/operator.py): the daemon's local API serves
each of them, and the CLI's daemon client offers each with the Operator's very signature, so
that a command runs the same verb whether a daemon runs or not."""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from decimal import Decimal

from tests.helpers import write_config
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.daemon.client import DaemonClient
from tradepipe.daemon.local_api import api_routes
from tradepipe.engine.operator import Operator, OperatorApi

VERBS = sorted(
    name
    for name, _ in inspect.getmembers(OperatorApi, inspect.isfunction)
    if not name.startswith("_")
)


def test_the_operator_and_the_daemon_client_offer_every_verb_with_one_signature():
    assert VERBS == [
        "flatten",
        "halt",
        "notify_test",
        "paper_chain",
        "paper_quote",
        "replay",
        "resume",
        "review",
        "risk",
        "status",
    ]
    for verb in VERBS:
        wanted = inspect.signature(getattr(OperatorApi, verb))
        for side in (Operator, DaemonClient):
            method = getattr(side, verb)
            assert inspect.iscoroutinefunction(method), f"{side.__name__}.{verb} is not async"
            assert inspect.signature(method) == wanted, f"{side.__name__}.{verb}"


def test_the_local_api_serves_every_verb_by_its_path():
    class Recorder:
        def __getattr__(self, verb):
            async def call(*args):
                return {"verb": verb, "args": list(args)}

            return call

    payload = {"account": "paper", "ticker": "AAPL", "price": "1.5", "signal_id": "3"}
    payload |= {"execute": True, "delivery_id": 7, "approve": False}
    payload |= {"scope": "account", "name": "paper", "state": "reduce_only", "reason": "FOMC"}
    payload |= {"underlying": "SPY", "text": "expiration,right,strike"}
    served = {path: asyncio.run(route(payload)) for path, route in api_routes(Recorder()).items()}
    assert {answer["verb"] for answer in served.values()} == set(VERBS)
    assert served["/api/paper/quote"]["args"] == ["paper", "AAPL", Decimal("1.5")]
    assert served["/api/replay"]["args"] == [3, True]
    assert served["/api/paper/chain"]["args"] == ["paper", "SPY", "expiration,right,strike"]
    assert served["/api/review"]["args"] == [7, False]
    assert served["/api/flatten"]["args"] == ["paper", "AAPL"]
    paper = Scope.account("paper")
    assert served["/api/halt"]["args"] == [paper, TradingState.REDUCE_ONLY, "FOMC"]
    assert served["/api/resume"]["args"] == [paper]


def test_test_configs_listen_on_a_free_port_not_a_shared_default(tmp_path):
    # A fixed default (8080) let a `tradepipe send` in one test reach another test's daemon.
    ports = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        ports.append(tomllib.loads(write_config(tmp_path / name).read_text())["server"]["port"])
    assert 8080 not in ports
    assert ports[0] != ports[1]
