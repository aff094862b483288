"""`tradepipe halt` and `tradepipe resume` (SPEC §13): set or end a scope's trading state,
through the running daemon when there is one (its in-memory states change with the journal's),
else on the journal alone under its lock (the next `tradepipe serve` starts with them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradepipe.cli import app, load, print_json
from tradepipe.cli.render import markup, out
from tradepipe.cli.render_health import state_line

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.core.trading_states import Scope

ScopeAccount = Annotated[
    str | None, typer.Option("--account", "-a", help="Only this account's orders.")
]
ScopeStrategy = Annotated[
    str | None, typer.Option("--strategy", "-s", help="Only this strategy's signals.")
]
ScopeSubscription = Annotated[
    str | None, typer.Option("--subscription", help="Only this subscription.")
]
JsonAnswer = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _scope(account: str | None, strategy: str | None, subscription: str | None) -> Scope:
    from tradepipe.core.trading_states import Scope
    from tradepipe.errors import UsageError

    given = [
        (kind, name)
        for kind, name in (
            ("account", account),
            ("strategy", strategy),
            ("subscription", subscription),
        )
        if name is not None
    ]
    if len(given) > 1:
        flags = " and ".join(f"--{kind} {name}" for kind, name in given)
        raise UsageError(f"one scope at a time: {flags} given (none: everything)")
    if not given:
        return Scope.everything()
    from tradepipe.engine.halting import scope_from

    return scope_from(*given[0])


@app.command(
    epilog="Examples: `tradepipe halt --reason 'broker outage'` (everything),"
    " `tradepipe halt --account live --reduce-only --reason 'FOMC at 14:00'`,"
    " `tradepipe halt --strategy trend --reason 'reviewing the script' --json`"
)
def halt(
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why: shown with every order it stops.")
    ],
    account: ScopeAccount = None,
    strategy: ScopeStrategy = None,
    subscription: ScopeSubscription = None,
    reduce_only: Annotated[
        bool,
        typer.Option(
            "--reduce-only", help="Let exits, cancels and breakeven through; stop entries and adds."
        ),
    ] = False,
    as_json: JsonAnswer = False,
) -> None:
    """Stop new orders for a scope (no scope: everything) until `tradepipe resume`. Halted:
    nothing goes out but cancels and `tradepipe flatten`; --reduce-only: exits, cancels and
    breakeven go, entries, adds and a reversal's entry are rejected with the reason. Working
    orders stay (use `tradepipe flatten` to close). Survives restarts."""
    from tradepipe.core.trading_states import TradingState
    from tradepipe.daemon.client import act_on_states
    from tradepipe.engine.halting import check_scope

    config = load()
    scope = _scope(account, strategy, subscription)
    check_scope(config, scope)  # here first: a typo is a usage error (exit 2)
    state = TradingState.REDUCE_ONLY if reduce_only else TradingState.HALTED
    result = act_on_states(config, lambda operator: operator.halt(scope, state, reason))
    if as_json:
        print_json(result)
        return
    out.print(markup("[red]{}[/] {} — {}", result["state"], str(scope), result["reason"]))
    _render_in_force(result, config)


@app.command(
    epilog="Examples: `tradepipe resume` (what `tradepipe halt` set on everything),"
    " `tradepipe resume --account live`, `tradepipe resume --subscription trend-live --json`"
)
def resume(
    account: ScopeAccount = None,
    strategy: ScopeStrategy = None,
    subscription: ScopeSubscription = None,
    as_json: JsonAnswer = False,
) -> None:
    """End the trading state set on a scope (no scope: the one set on everything), by the
    operator or by a trip. A state on another scope stays: what is still in force is shown."""
    from tradepipe.daemon.client import act_on_states

    config = load()
    scope = _scope(account, strategy, subscription)
    result = act_on_states(config, lambda operator: operator.resume(scope))
    if as_json:
        print_json(result)
        return
    if result["resumed"]:
        out.print(markup("[green]resumed[/] {}", str(scope)))
    else:
        out.print(markup("[dim]no state set on {}: nothing to resume[/]", str(scope)))
    _render_in_force(result, config)


def _render_in_force(result: dict[str, Any], config: Config) -> None:
    states = result["trading_states"]
    if not states:
        out.print("[green]active[/]: every scope trades")
        return
    out.print("in force:")
    for state in states:
        out.print("  " + state_line(state))
