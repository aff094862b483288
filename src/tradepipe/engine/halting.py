"""The operator's halt and resume (SPEC §13): `tradepipe halt` sets a scope's trading state,
`tradepipe resume` ends it. Scope names are checked against the config; each command is an
operator action in the audit trail, and its state a `trading_state` event (journal/
trading_states.py). The daemon runs these on its own in-memory states (engine.states); with no
daemon the CLI runs them on the journal's, under the journal lock (daemon/client.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradepipe.core.trading_states import Scope, ScopeKind, TradingState
from tradepipe.engine.trading_states import TradingStates
from tradepipe.errors import UsageError
from tradepipe.journal.trading_states import state_row_json

if TYPE_CHECKING:
    from tradepipe.config import Config

MAX_REASON = 500  # characters: a reason is a sentence for the log, not a document

# The config table each named scope must be in, and its word in an error.
_TABLES = {
    ScopeKind.ACCOUNT: ("accounts", "accounts"),
    ScopeKind.STRATEGY: ("strategies", "strategies"),
    ScopeKind.SUBSCRIPTION: ("subscriptions", "subscriptions"),
}


def scope_from(kind: str, name: str | None) -> Scope:
    """A scope as the local API and the CLI spell it: `everything`, or a kind and a name."""
    try:
        scope_kind = ScopeKind(kind)
    except ValueError:
        known = ", ".join(ScopeKind)
        raise UsageError(f"scope {kind!r} is not one of {known}") from None
    if scope_kind is ScopeKind.EVERYTHING:
        return Scope.everything()
    if not name:
        raise UsageError(f"a {scope_kind} scope needs a name")
    return Scope(scope_kind, name)


def check_scope(config: Config, scope: Scope, states: TradingStates | None = None) -> None:
    """The scope names something the config has (or, for `resume`, a state in force: one set
    on a strategy a reload removed can still be ended)."""
    if scope.kind is ScopeKind.EVERYTHING:
        return
    if states is not None and scope in states.rows:
        return
    table, words = _TABLES[scope.kind]
    known = getattr(config, table)
    if scope.name not in known:
        raise UsageError(
            f'no {scope.kind} "{scope.name}" in the config ({words}: {", ".join(known) or "none"})'
        )


def halt(
    config: Config, states: TradingStates, scope: Scope, state: TradingState, reason: str
) -> dict[str, Any]:
    """Set `scope` to `state` (halted or reduce_only) until `resume`; answers it and every
    state in force."""
    if state is TradingState.ACTIVE:
        raise UsageError("halt sets halted or reduce_only; `tradepipe resume` ends a halt")
    reason = reason.strip()
    if not reason:
        raise UsageError("--reason must say why (it is shown with every order it stops)")
    if len(reason) > MAX_REASON:
        raise UsageError(f"--reason is {len(reason)} characters; at most {MAX_REASON}")
    check_scope(config, scope)
    states.journal.record_operator_action(
        "halt", str(scope), states.clock(), state=str(state), reason=reason
    )
    row = states.halt(scope, state, f"operator: {reason}")
    return {**state_row_json(row), "trading_states": in_force(states)}


def resume(config: Config, states: TradingStates, scope: Scope) -> dict[str, Any]:
    """End the state set on `scope` (by the operator or a trip); answers whether there was one,
    and every state still in force (a broader or narrower scope may still be halted)."""
    check_scope(config, scope, states)
    states.journal.record_operator_action("resume", str(scope), states.clock())
    resumed = states.resume(scope)
    return {
        "scope": str(scope.kind),
        "name": scope.name or None,
        "resumed": resumed,
        "trading_states": in_force(states),
    }


def in_force(states: TradingStates) -> list[dict[str, Any]]:
    """The states in force now, as JSON, broadest scope first."""
    return [state_row_json(row) for row in states.in_force()]
