"""tradepipe: a self-hosted TradingView webhook to broker order router."""

__version__ = "0.1.0"
