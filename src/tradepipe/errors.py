"""The errors tradepipe raises, named for what the caller should do about them."""

from __future__ import annotations


class TradepipeError(Exception):
    """Base of every error the CLI turns into a one-line message."""

    exit_code = 1


class ConfigError(TradepipeError):
    """The configuration is invalid: stop and tell the user which file, key and value."""

    exit_code = 2


class UsageError(TradepipeError):
    """The command line asks for something impossible."""

    exit_code = 2


class JournalError(TradepipeError):
    """The journal cannot be opened or is not a tradepipe journal."""


class BrokerError(TradepipeError):
    """Base of broker errors; adapters translate their SDK's exceptions into these."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached; the outcome of the call is unknown or nothing happened."""


class OrderRejected(BrokerError):
    """The broker refused the order; the message carries the broker's own words."""


class DaemonUnavailable(TradepipeError):
    """No running daemon answered."""
