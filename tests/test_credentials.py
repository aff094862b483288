"""Broker credentials: looked up keyring → environment → systemd credential, never shown.

In-process tests pick the keyring backend through keyring's own `set_keyring`; the CLI tests
choose it as a user would, with PYTHON_KEYRING_BACKEND, so the machine's keyring is never used.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as NoKeyring

from tests.file_keyring import FileKeyring
from tests.helpers import tradepipe, write_config
from tradepipe.config import credentials
from tradepipe.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    previous = keyring.get_keyring()  # before the variable makes the test backend viable
    monkeypatch.setenv("TRADEPIPE_TEST_KEYRING", str(tmp_path / "keyring.json"))
    keyring.set_keyring(FileKeyring())
    yield tmp_path / "keyring.json"
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    yield
    keyring.set_keyring(previous)


def systemd_dir(tmp_path: Path, account: str, text: str) -> dict[str, str]:
    directory = tmp_path / "creds"
    directory.mkdir(exist_ok=True)
    (directory / account).write_text(text)
    return {"CREDENTIALS_DIRECTORY": str(directory)}


ENV = {"TRADEPIPE_ALPACA_LIVE_KEY": "env-key", "TRADEPIPE_ALPACA_LIVE_SECRET": "env-secret"}
SYSTEMD = 'key = "sd-key"\nsecret = "sd-secret"\n'


@pytest.mark.parametrize(
    ("in_keyring", "in_env", "in_systemd", "found"),
    [
        (True, True, True, "keyring"),
        (False, True, True, "environment"),
        (False, False, True, "systemd"),
        (True, False, False, "keyring"),
        (False, False, False, None),
    ],
)
def test_the_first_place_that_has_them_wins(
    tmp_path, file_keyring, in_keyring, in_env, in_systemd, found
):
    if in_keyring:
        credentials.store("alpaca-live", credentials.Credentials("kr-key", "kr-secret"))
    environ = dict(ENV) if in_env else {}
    if in_systemd:
        environ |= systemd_dir(tmp_path, "alpaca-live", SYSTEMD)
    result = credentials.find("alpaca-live", environ)
    if found is None:
        assert result is None
        return
    assert result is not None
    assert result.source.startswith(found)
    prefix = {"keyring": "kr", "environment": "env", "systemd": "sd"}[found]
    assert (result.key, result.secret) == (f"{prefix}-key", f"{prefix}-secret")


def test_a_server_without_a_keyring_reads_the_environment(no_keyring):
    found = credentials.find("alpaca-live", ENV)
    assert found is not None and found.key == "env-key"


def test_account_names_with_dashes_map_to_underscores():
    assert credentials.env_prefix("alpaca-live") == "TRADEPIPE_ALPACA_LIVE_"


def test_a_passphrase_is_carried_for_exchanges_that_need_one(no_keyring):
    environ = ENV | {"TRADEPIPE_ALPACA_LIVE_PASSPHRASE": "pp"}
    found = credentials.find("alpaca-live", environ)
    assert found is not None and found.passphrase == "pp"


def test_missing_credentials_name_the_account_and_every_place_looked(no_keyring):
    with pytest.raises(ConfigError) as caught:
        credentials.require("alpaca-live", {})
    message = str(caught.value)
    assert "alpaca-live" in message
    assert "tradepipe secrets set alpaca-live" in message
    assert "TRADEPIPE_ALPACA_LIVE_KEY" in message
    assert "$CREDENTIALS_DIRECTORY/alpaca-live" in message


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"TRADEPIPE_ALPACA_LIVE_KEY": "only-the-key"}, "no secret"),
        ({"TRADEPIPE_ALPACA_LIVE_SECRET": "only-the-secret"}, "no key"),
    ],
)
def test_half_a_credential_is_an_error_not_a_fallthrough(no_keyring, environ, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        credentials.find("alpaca-live", environ)
    assert "only-the" not in str(caught.value)


def test_a_broken_systemd_credential_is_named_without_quoting_it(tmp_path, no_keyring):
    environ = systemd_dir(tmp_path, "alpaca-live", 'key = "canary-123\nsecret = 5')
    with pytest.raises(ConfigError) as caught:
        credentials.find("alpaca-live", environ)
    assert "alpaca-live" in str(caught.value)
    assert "canary-123" not in str(caught.value)


def test_credentials_never_show_their_values():
    found = credentials.Credentials("canary-key", "canary-secret", "canary-pp", "environment")
    for text in (repr(found), str(found), f"{found}", f"{found!r}"):
        assert "canary" not in text


# -- through the CLI, as a user --------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHON_KEYRING_BACKEND": "tests.file_keyring.FileKeyring",
        "TRADEPIPE_TEST_KEYRING": str(tmp_path / "keyring.json"),
        "PYTHONPATH": str(REPO),
    }


ALPACA = """
[accounts.alpaca-live]
broker = "alpaca"
base_url = "http://127.0.0.1:9"
timeout = 1
"""


def test_secrets_set_stores_in_the_keyring_and_never_echoes(tmp_path):
    config = write_config(tmp_path, account=ALPACA)
    result = tradepipe(
        config,
        "secrets",
        "set",
        "alpaca-live",
        stdin="canary-key\ncanary-secret\n",
        env=_env(tmp_path),
    )
    assert "stored in the keyring (FileKeyring)" in result.stdout
    assert "canary" not in result.stdout + result.stderr
    stored = json.loads((tmp_path / "keyring.json").read_text())
    assert json.loads(stored["tradepipe/alpaca-live"]) == {
        "key": "canary-key",
        "secret": "canary-secret",
    }


@pytest.mark.parametrize(
    ("account", "stdin", "message"),
    [
        ("paper", "k\ns\n", "account paper (broker paper) needs none"),
        ("nope", "k\ns\n", 'no account "nope"'),
        ("alpaca-live", "only-a-key\n", "both an API key and a secret are needed"),
    ],
)
def test_secrets_set_refuses_what_cannot_be_right(tmp_path, account, stdin, message):
    config = write_config(tmp_path, account=ALPACA)
    result = tradepipe(
        config, "secrets", "set", account, stdin=stdin, env=_env(tmp_path), check=False
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_config_check_connects_and_reports_the_paper_account(tmp_path):
    config = write_config(tmp_path)
    report = json.loads(tradepipe(config, "config", "check", "--json").stdout)
    (paper,) = report["accounts"]
    assert paper["ok"] is True
    assert (paper["equity"], paper["buying_power"]) == (100000, 100000)
    assert paper["capabilities"]["brackets"] is True
    assert "trailing_stop" in paper["capabilities"]["order_types"]
    assert not (tmp_path / "journal.db").exists()  # a check creates no journal
    text = tradepipe(config, "config", "check").stdout
    assert "paper: broker paper connected: equity 100,000.00" in text


def test_config_check_fails_with_the_account_name_when_a_credential_is_missing(tmp_path):
    config = write_config(tmp_path, account=ALPACA)
    result = tradepipe(config, "config", "check", env=_env(tmp_path), check=False)
    assert result.returncode == 2
    assert "alpaca-live" in result.stdout
    assert "no broker credentials found" in result.stdout
    offline = tradepipe(config, "config", "check", "--offline", env=_env(tmp_path))
    assert "alpaca-live: broker alpaca (not connected)" in offline.stdout


def test_serve_refuses_to_start_without_a_credential_naming_the_account(tmp_path):
    config = write_config(tmp_path, account=ALPACA)
    result = tradepipe(config, "serve", env=_env(tmp_path), check=False, timeout=30)
    assert result.returncode == 2
    assert "account alpaca-live: no broker credentials found" in result.stderr


def test_config_check_and_serve_say_where_the_credentials_came_from(tmp_path):
    # Which place won matters when two hold keys (a stale keyring entry shadows the
    # environment): the check names it, the daemon logs it, and neither shows a value.
    config = write_config(tmp_path, account=ALPACA)
    env = _env(tmp_path) | ENV
    result = tradepipe(config, "config", "check", "--json", env=env, check=False)
    assert result.returncode == 1  # nothing listens at the base_url: found, not reachable
    reports = {r["account"]: r for r in json.loads(result.stdout)["accounts"]}
    assert "credentials" not in reports["paper"]  # the paper broker needs none
    assert reports["alpaca-live"]["credentials"] == "environment (TRADEPIPE_ALPACA_LIVE_*)"
    text = tradepipe(config, "config", "check", env=env, check=False).stdout
    assert "alpaca-live: broker alpaca (credentials from environment" in text
    # The daemon keeps retrying the unreachable broker: read what it logged in its first seconds.
    with pytest.raises(subprocess.TimeoutExpired) as served:
        tradepipe(config, "serve", env=env, check=False, timeout=6)
    logged = served.value.stderr
    logged = logged.decode() if isinstance(logged, bytes) else logged or ""
    assert "account alpaca-live: broker credentials from environment" in logged
    for output in (result.stdout, text, logged):
        assert "env-key" not in output and "env-secret" not in output
