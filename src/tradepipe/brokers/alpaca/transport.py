"""Talking to Alpaca through alpaca-py: a deadline on every request, none of its blind
retries, and every exception it raises turned into one of ours, named for what to do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import requests
from alpaca.common.exceptions import APIError

from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

DUPLICATE_ID = "client_order_id must be unique"


class NotFound(BrokerError):
    """Alpaca answered 404: the caller decides what absence means."""


class Duplicate(BrokerError):
    """Alpaca already has an order with this client order id."""


class TimeoutSession(requests.Session):
    """alpaca-py calls `session.request` without a timeout: this session adds one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.trust_env = False  # no proxy from the environment between us and the broker

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def without_retries(client: Any, timeout: float) -> Any:
    """Never let alpaca-py repeat a request on its own (it re-POSTs an order on 429 / 504),
    and give every request a deadline. tests/test_alpaca.py pins these private names."""
    client._retry = 0
    client._retry_codes = []
    client._session = TimeoutSession(timeout)
    return client


class Calls:
    """One account's calls: run in a thread, their errors ours."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self._timeout = timeout

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Every alpaca-py / requests exception becomes one of ours, named for what to do."""
        try:
            yield
        except APIError as e:
            raise self.api_error(e, doing) from e
        except requests.Timeout as e:
            raise BrokerUnavailable(
                f"alpaca account {self.name}: no answer within {self._timeout:g} s ({doing});"
                " the outcome is unknown"
            ) from e
        except requests.RequestException as e:
            raise BrokerUnavailable(
                f"alpaca account {self.name}: cannot reach the broker ({doing}): {type(e).__name__}"
            ) from e

    def api_error(self, e: APIError, doing: str) -> BrokerError:
        status = e.status_code or 0
        try:
            message, code = str(e.message), int(e.code)
        except (ValueError, KeyError, TypeError):
            message, code = (str(e) or "no message").strip()[:200], 0
        if status == 401 or (status == 403 and not str(code).startswith("403")):
            return BrokerError(
                f"alpaca account {self.name}: the broker refused the credentials (HTTP {status}"
                f" while {doing}); check the account's key and secret"
            )
        if status == 404:
            return NotFound(message)
        if status == 422 and DUPLICATE_ID in message:
            return Duplicate(message)
        if status == 429 or status >= 500 or status == 0:
            return BrokerUnavailable(
                f"alpaca account {self.name}: HTTP {status} while {doing}: {message}"
            )
        return OrderRejected(message)

    async def call(self, doing: str, function: Callable[..., Any], *args: Any) -> Any:
        with self.errors(doing):
            return await asyncio.to_thread(function, *args)
