"""Broker credentials: where they are looked up, and how they are kept out of every output.

Looked up per account, first found wins (SPEC §8, README "Broker credentials"):

1. the system keyring, service ``tradepipe``, user = the account name (``tradepipe secrets set``);
2. environment variables ``TRADEPIPE_<ACCOUNT>_KEY``, ``_SECRET`` and ``_PASSPHRASE`` (the account
   name upper-cased, ``-`` written ``_``);
3. systemd credentials: the file ``$CREDENTIALS_DIRECTORY/<account>`` (``LoadCredential=``),
   TOML with ``key``, ``secret`` and optionally ``passphrase``.

Credentials are never config keys, and their values never appear in a repr, a log line or an
error message: `Credentials` hides them, and errors name the account and where we looked.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tradepipe.errors import ConfigError

SERVICE = "tradepipe"
FIELDS = ("key", "secret", "passphrase")


@dataclass(frozen=True, slots=True)
class Credentials:
    key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)
    source: str = ""  # where they were found: "keyring", "environment", "systemd credential"

    def __str__(self) -> str:
        return f"credentials from {self.source}"


def env_prefix(account: str) -> str:
    return f"TRADEPIPE_{account.upper().replace('-', '_')}_"


def _from_mapping(values: Mapping[str, object], source: str, account: str) -> Credentials:
    missing = [name for name in ("key", "secret") if not values.get(name)]
    if missing:
        raise ConfigError(
            f"account {account}: the {source} has no {' and no '.join(missing)}"
            " (both key and secret are needed)"
        )
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"account {account}: the {source} has unknown field(s) {', '.join(unknown)}"
            f" (allowed: {', '.join(FIELDS)})"
        )
    passphrase = values.get("passphrase")
    return Credentials(
        key=str(values["key"]),
        secret=str(values["secret"]),
        passphrase=str(passphrase) if passphrase else None,
        source=source,
    )


def _keyring_get(account: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        return keyring.get_password(SERVICE, account)
    except (KeyringError, RuntimeError):  # no backend on a headless server: look further
        return None


def store(account: str, credentials: Credentials) -> str:
    """Keep credentials in the system keyring; answers the backend's name."""
    import keyring
    from keyring.errors import KeyringError

    values = {"key": credentials.key, "secret": credentials.secret}
    if credentials.passphrase:
        values["passphrase"] = credentials.passphrase
    try:
        keyring.set_password(SERVICE, account, json.dumps(values))
    except (KeyringError, RuntimeError) as e:
        raise ConfigError(
            f"account {account}: the system keyring refused the credentials ({type(e).__name__});"
            f" on a server without a keyring use the environment variables {env_prefix(account)}"
            "KEY / _SECRET or a systemd credential instead"
        ) from None
    return type(keyring.get_keyring()).__name__


def find(account: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The account's credentials from the first place that has them, or None."""
    environ = os.environ if environ is None else environ
    stored = _keyring_get(account)
    if stored:
        try:
            values = json.loads(stored)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise ConfigError(
                f"account {account}: the keyring entry is not what `tradepipe secrets set"
                f" {account}` stores; set it again"
            )
        return _from_mapping(values, "keyring", account)
    prefix = env_prefix(account)
    from_env = {
        name: environ[prefix + name.upper()] for name in FIELDS if prefix + name.upper() in environ
    }
    if from_env:
        return _from_mapping(from_env, f"environment ({prefix}*)", account)
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / account
        if path.is_file():
            try:
                values = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                # The parser's message could quote a line of the file: name the file only.
                raise ConfigError(
                    f"account {account}: the systemd credential {path} is not TOML with"
                    ' key = "…" and secret = "…"'
                ) from None
            return _from_mapping(values, f"systemd credential {path}", account)
    return None


def require(account: str, environ: Mapping[str, str] | None = None) -> Credentials:
    found = find(account, environ)
    if found is None:
        raise ConfigError(
            f"account {account}: no broker credentials found; looked in the keyring"
            f" (tradepipe secrets set {account}), the environment ({env_prefix(account)}KEY,"
            f" {env_prefix(account)}SECRET) and $CREDENTIALS_DIRECTORY/{account}"
        )
    return found
