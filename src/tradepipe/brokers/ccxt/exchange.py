"""A ccxt exchange as an account configures it: which exchanges are verified, the client built
from the config (sandbox, base URL), the request budget shared per API address, and the
exchange's own words out of a ccxt error, and its errors as ours."""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from tradepipe.brokers.ccxt.budget import RequestBudget
from tradepipe.config.credentials import Credentials
from tradepipe.errors import BrokerError, BrokerUnavailable, ConfigError, OrderRejected

# Exchanges whose client-order-id lookup, duplicate answers and statuses are tested (stub).
VERIFIED = frozenset({"binance"})


def exchange_words(error: Exception, exchange_id: str) -> str:
    """The exchange's own message out of a ccxt error ("binance {"code":-2010,"msg":…}")."""
    text = str(error)
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("msg"):
            code = body.get("code")
            return f"{body['msg']} (code {code})" if code is not None else str(body["msg"])
    # ccxt's network errors read "<id> GET <url>": the query string carries the signature and,
    # at some exchanges, the key id. Keep the path only.
    return re.sub(r"\?\S*", "", text.removeprefix(exchange_id)).strip()


def point_at(urls: Any, base_url: str) -> Any:
    """Every API URL with its scheme and host replaced by `base_url`'s, its path kept."""
    if isinstance(urls, dict):
        return {key: point_at(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        base = urlsplit(base_url)
        parts = urlsplit(urls)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
    return urls


# Exchanges count request weight per IP address: one budget per exchange and API address in
# this process, whichever accounts use it (a sandbox or a base_url override is another address).
_BUDGETS: dict[tuple[str, str], RequestBudget] = {}


def shared_budget(exchange: Any) -> RequestBudget:
    where = json.dumps(exchange.urls.get("api"), sort_keys=True, default=str)
    key = (exchange.id, where)
    if key not in _BUDGETS:
        _BUDGETS[key] = RequestBudget.of_ccxt_rate_limit(exchange.rateLimit)
    return _BUDGETS[key]


def make_exchange(name: str, account: Any, credentials: Credentials | None) -> Any:
    """The ccxt async client of one configured account: a verified exchange, spot markets,
    ccxt's rate limiting on, credentials, sandbox and a base URL override applied."""
    exchange_id = account.exchange
    if exchange_id not in ccxt_async.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt_async.exchanges, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise ConfigError(f'account {name}: ccxt has no exchange "{exchange_id}"{hint}')
    if exchange_id not in VERIFIED:
        # Lookup by client order id, duplicate answers and statuses differ per exchange;
        # an unverified one could answer "not found" for a live order, and be sent twice.
        raise ConfigError(
            f'account {name}: exchange "{exchange_id}" is not verified with tradepipe yet'
            f" (verified: {', '.join(sorted(VERIFIED))}); idempotent ordering depends on"
            " each exchange's client-order-id lookup"
        )
    if account.market_type != "spot":
        raise ConfigError(
            f'account {name}: market_type "{account.market_type}" is not supported yet:'
            " perpetuals route stop orders to another endpoint and count positions in"
            ' contracts; use market_type = "spot"'
        )
    config: dict[str, Any] = {
        "timeout": int(Decimal(account.timeout) * 1000),
        "enableRateLimit": True,
        "options": {
            "defaultType": account.market_type,
            # load_markets without Binance's private extra calls (currencies, margin pairs)
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["spot" if account.market_type == "spot" else "linear"]},
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    }
    if credentials is not None:
        config |= {"apiKey": credentials.key, "secret": credentials.secret}
        if credentials.passphrase:
            config["password"] = credentials.passphrase
    exchange = getattr(ccxt_async, exchange_id)(config)
    if account.sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt_errors.NotSupported:
            raise ConfigError(
                f"account {name}: {exchange_id} has no sandbox in ccxt; set sandbox = false"
            ) from None
    if account.base_url:
        exchange.urls["api"] = point_at(exchange.urls["api"], str(account.base_url))
    return exchange


@contextlib.contextmanager
def errors(name: str, exchange_id: str) -> Iterator[None]:
    """Every ccxt exception becomes one of ours, named for what to do."""
    try:
        yield
    except ccxt_errors.AuthenticationError as e:  # PermissionDenied too; never the key
        raise BrokerError(
            f"account {name}: {exchange_id} refused the credentials"
            f" ({exchange_words(e, exchange_id)})"
        ) from e
    except ccxt_errors.NetworkError as e:  # timeouts, 5xx, rate limits: outcome unknown
        raise BrokerUnavailable(
            f"{exchange_id} ({name}): {type(e).__name__}: {exchange_words(e, exchange_id)}"
        ) from e
    except ccxt_errors.ExchangeError as e:  # the exchange answered no, in its words
        raise OrderRejected(f"{exchange_id}: {exchange_words(e, exchange_id)}") from e
    except ccxt_errors.BaseError as e:  # an answer ccxt could not read: outcome unknown
        raise BrokerUnavailable(f"{exchange_id} ({name}): {e}") from e
