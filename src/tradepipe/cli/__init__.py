"""The command line: a skin over the journal, the daemon and the engine.

Each command parses, loads the config, calls one function and renders with rich (cli/render.py).
Errors become one line and an exit code (0 success, 1 runtime failure, 2 usage or configuration
error), in `main`; a traceback only with --debug. Heavy modules are imported inside the commands
so that `tradepipe --help` stays fast. The commands live in reading.py (the journal), acting.py
(the Operator's verbs) and setup.py (serve, config, secrets, backup).
"""

from __future__ import annotations

import functools
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradepipe.cli.render import err, markup, out, print_json

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.journal import Journal

__all__ = ["app", "err", "main", "out", "print_json"]

app = typer.Typer(
    name="tradepipe",
    help="Self-hosted TradingView webhook → broker order router.\n\n"
    "Start with `tradepipe serve`: with no config it writes a starter one (paper broker) and "
    "prints the webhook URL.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

signals_app = typer.Typer(help="The signal log, and one signal in detail.")
config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
paper_app = typer.Typer(help="The built-in paper broker.", no_args_is_help=True)
notify_app = typer.Typer(help="Notifications ([[notify]] targets).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail: list it, verify its hash chain.")
secrets_app = typer.Typer(
    help="Broker credentials, kept in the system keyring.", no_args_is_help=True
)
app.add_typer(signals_app, name="signals")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(paper_app, name="paper")
app.add_typer(notify_app, name="notify")
app.add_typer(secrets_app, name="secrets")


class State:
    config_path: Path | None = None
    debug: bool = False


state = State()


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON array for scripts.")]

AccountOption = Annotated[str | None, typer.Option("--account", "-a", help="Only this account.")]

TickerOption = Annotated[
    str | None, typer.Option("--ticker", "-t", help="Only this ticker (as the account spells it).")
]


CsvOption = Annotated[
    bool, typer.Option("--csv", help="Print CSV (a header, then one line a row) for spreadsheets.")
]

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="From this moment on: 2026-12-01, an ISO datetime (UTC), today, or 7d."
    ),
]


def moment(text: str | None, option: str) -> datetime | None:
    """A --since/--until value as an aware UTC datetime (a usage error names the forms)."""
    if text is None:
        return None
    from tradepipe.core.moments import parse_moment
    from tradepipe.errors import UsageError

    try:
        return parse_moment(text, datetime.now(UTC))
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None


def one_format(as_json: bool, as_csv: bool) -> None:
    """--json and --csv are two answers to one question: pick one."""
    if as_json and as_csv:
        from tradepipe.errors import UsageError

        raise UsageError("--json and --csv: give one of them")


def limit_option(default: int) -> Any:
    return typer.Option(min=1, help=f"How many, newest first (default {default}).")


CONFIG_HELP = "Config file (else $TRADEPIPE_CONFIG, ./tradepipe.toml, the user config dir)."

DEBUG_HELP = "Show tracebacks and debug logs."


def _print_version(value: bool) -> None:
    if value:
        from tradepipe import __version__

        out.print(f"tradepipe {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state.config_path = config
    state.debug = debug


# -- configuration ---------------------------------------------------------------------------


def config_location() -> tuple[Path, bool]:
    from tradepipe.config import find_config_path

    return find_config_path(state.config_path, os.environ, Path.cwd())


def missing_config(path: Path) -> Exception:
    """The error for a config file that is not there: a path the user named is a typo to fix,
    never a place to write a starter config (that goes only to the default location)."""
    from tradepipe.errors import ConfigError

    if state.config_path is not None:
        return ConfigError(f"config file {path} (from --config) does not exist")
    if os.environ.get("TRADEPIPE_CONFIG"):
        return ConfigError(f"config file {path} (from $TRADEPIPE_CONFIG) does not exist")
    return ConfigError(
        f"no config file at {path}: run `tradepipe serve` once to create a starter config,"
        " or pass --config PATH"
    )


def load() -> Config:
    from tradepipe.config import load_config

    path, exists = config_location()
    if not exists:
        raise missing_config(path)
    return load_config(path)


def open_journal(config: Config) -> Journal:
    from tradepipe.journal import Journal

    return Journal.open(Path(config.journal.path), create=False)


def pick_strategy(config: Config, name: str | None) -> str:
    from tradepipe.errors import UsageError

    if name is not None:
        if name not in config.strategies:
            known = ", ".join(config.strategies) or "none"
            raise UsageError(f'no strategy "{name}" in {config.path} (strategies: {known})')
        return name
    if len(config.strategies) != 1:
        known = ", ".join(config.strategies) or "none"
        raise UsageError(f"the config has several strategies ({known}): pick one with --strategy")
    return next(iter(config.strategies))


# The commands register themselves on `app` when imported; the names above must exist first.
from tradepipe.cli import acting, halting, reading, report, risk, setup  # noqa: E402, F401

# `tradepipe --help` lists them in the order a newcomer meets them, not by module.
_HELP_ORDER = {
    name: place
    for place, name in enumerate(
        [
            "serve",
            "send",
            "orders",
            "trades",
            "positions",
            "report",
            "pending",
            "approve",
            "reject",
            "strategies",
            "flatten",
            "replay",
            "status",
            "backup",
        ]
    )
}
app.registered_commands.sort(
    key=lambda info: _HELP_ORDER.get(getattr(info.callback, "__name__", ""), len(_HELP_ORDER))
)

# -- options every command takes -------------------------------------------------------------
# `tradepipe serve --config X` as well as `tradepipe --config X serve`: each command and group
# also takes the global options after its name (the later one wins), and shows a flag as a flag
# (`--json`, not `--json <bool>`, which reads as if it took a value). This walks the whole tree,
# so it runs after every command module above has registered its commands.


def _set_config(value: Path | None) -> None:
    if value is not None:
        state.config_path = value


def _set_debug(value: bool) -> None:
    if value:
        state.debug = True


_shared = typer.Typer(add_completion=False)


@_shared.command()
def _shared_options(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help=CONFIG_HELP, callback=_set_config)
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP, callback=_set_debug)] = False,
) -> None:
    """Never run: Typer builds the global options' parameters from this signature."""


@functools.cache
def _shared_parameters() -> list[Any]:
    parameters = typer.main.get_command(_shared).params
    for parameter in parameters:
        parameter.expose_value = False  # the callbacks keep the value, not the command
    return parameters


def _with_global_options(command: Any) -> None:
    names = {p.name for p in command.params}
    command.params.extend(p for p in _shared_parameters() if p.name not in names)


def _flags_as_flags(parameters: list[Any]) -> list[Any]:
    for parameter in parameters:
        if getattr(parameter, "is_flag", False) and parameter.metavar is None:
            parameter.metavar = ""
    return parameters


class _Command(typer.core.TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _with_global_options(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _with_global_options(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


def _use_global_options(typer_app: typer.Typer) -> None:
    typer_app.info.cls = _Group
    for info in typer_app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _use_global_options(group.typer_instance)


_use_global_options(app)


# -- entry point -----------------------------------------------------------------------------


def _click_exceptions() -> tuple[tuple[type[Any], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the click that Typer runs on: the copy Typer ≥ 0.24 ships, else
    click itself (imported only then: a dozen milliseconds of every `tradepipe` run). A usage
    error is either copy's ClickException (two unrelated classes): typed Any, it has `show()`
    and `exit_code`."""
    try:
        from typer._click.exceptions import ClickException  # its Abort is typer.Abort
    except ImportError:
        from click.exceptions import Abort
        from click.exceptions import ClickException as ClickError

        return (ClickError,), (Abort, typer.Abort)
    return (ClickException,), (typer.Abort,)


def main() -> None:
    from tradepipe.errors import TradepipeError

    usage_errors, aborts = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except TradepipeError as e:
        if state.debug:
            raise
        err.print(markup("[red]error[/]: {}", e))
        sys.exit(e.exit_code)
    except aborts:
        err.print("aborted")
        sys.exit(1)
    except usage_errors as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if state.debug:
            raise
        line = "[red]error[/]: {}: {} (run with --debug for details)"
        err.print(markup(line, e.__class__.__name__, e))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
