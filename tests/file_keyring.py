"""A keyring backend that keeps passwords in a JSON file named by $TRADEPIPE_TEST_KEYRING.

Tests select it the way a user selects any backend, `PYTHON_KEYRING_BACKEND=
tests.file_keyring.FileKeyring`, so `tradepipe secrets set` in one subprocess and `tradepipe
serve` in the next share a keyring without touching the machine's real one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.compat import properties


class FileKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        # keyring considers every loaded backend class when it picks a default: this one is
        # viable only where a test asked for it, never merely because a test imported it.
        if "TRADEPIPE_TEST_KEYRING" not in os.environ:
            raise RuntimeError("TRADEPIPE_TEST_KEYRING is not set")
        return 1

    def _path(self) -> Path:
        return Path(os.environ["TRADEPIPE_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        path = self._path()
        return json.loads(path.read_text()) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        values = self._load()
        values[f"{service}/{username}"] = password
        self._path().write_text(json.dumps(values))

    def delete_password(self, service: str, username: str) -> None:
        values = self._load()
        values.pop(f"{service}/{username}", None)
        self._path().write_text(json.dumps(values))
