"""Finding the configuration file and loading it: read, override from the environment,
validate; every problem in one `ConfigError` naming the file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import (
    ValidationError,
)
from pydantic_settings.exceptions import SettingsError

from tradepipe.config.messages import _did_you_mean, _dotted
from tradepipe.config.model import Config
from tradepipe.errors import ConfigError


def load_config(path: Path) -> Config:
    """Read, override from the environment, validate; every problem in one `ConfigError`."""
    path = Path(path).expanduser().absolute()
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None

    # Top-level keys are checked here: BaseSettings would match them case-insensitively and
    # would read "_name" keys as its own options.
    fields = list(Config.model_fields)
    unknown = [k for k in data if k not in fields]
    problems = [f'{_dotted((k,))}: unknown key "{k}"{_did_you_mean(k, fields)}' for k in unknown]
    data = {k: v for k, v in data.items() if k in fields}
    config = None
    try:
        config = Config(**data)
    except ValidationError as e:
        problems += [f"{_dotted(err['loc'])}: {err['msg']}" for err in e.errors()]
    except SettingsError as e:  # an override that should be JSON (a list, a table) and is not
        problems.append(f"environment override: {e} (write arrays and tables as JSON)")
    if problems or config is None:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        overrides = sorted(
            k for k in os.environ if k.upper().startswith("TRADEPIPE_") and "__" in k
        )
        note = [f"(environment overrides applied: {', '.join(overrides)})"] if overrides else []
        raise ConfigError("\n  ".join([f"{path}: {count}:", *problems, *note]))

    journal = config.journal.path.expanduser()
    if not journal.is_absolute():
        config.journal.path = path.parent / journal
    config._path = path
    return config


def find_config_path(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> tuple[Path, bool]:
    """--config, else $TRADEPIPE_CONFIG, else ./tradepipe.toml, else the user config dir (§9)."""
    if explicit is not None:
        path = cwd / Path(explicit).expanduser()
    elif env.get("TRADEPIPE_CONFIG"):
        path = cwd / Path(env["TRADEPIPE_CONFIG"]).expanduser()
    elif (cwd / "tradepipe.toml").exists():
        path = cwd / "tradepipe.toml"
    else:
        import click  # here, not at the top: `tradepipe --help` need not pay for it

        path = Path(click.get_app_dir("tradepipe")) / "tradepipe.toml"
    return path, path.exists()
