"""What a strategy asks TradingView to send: the alert message template per strategy, with its
webhook URL and subscriptions (pure: built from the config alone)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradepipe.config.model import Config


def tradingview_message(has_passphrase: bool) -> dict[str, Any]:
    """The alert message TradingView fills in with its placeholders (SPEC's payload fields)."""
    message: dict[str, Any] = {
        "ticker": "{{ticker}}",
        "action": "{{strategy.order.action}}",
        "sentiment": "{{strategy.market_position}}",
        "quantity": "{{strategy.order.contracts}}",
        "signalPrice": "{{close}}",
        "time": "{{timenow}}",
    }
    if has_passphrase:
        message["passphrase"] = "YOUR-PASSPHRASE"
    return message


def strategy_alerts(config: Config) -> list[dict[str, Any]]:
    """Per strategy: its webhook URL, subscriptions and a ready-to-paste alert message."""
    return [
        {
            "strategy": name,
            "webhook_url": config.webhook_url(name),
            "subscriptions": [s for s, _ in config.subscriptions_for(name)],
            "tradingview_message": json.dumps(
                tradingview_message(bool(config.strategies[name].passphrase))
            ),
        }
        for name in config.strategies
    ]
