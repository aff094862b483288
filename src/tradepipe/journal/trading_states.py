"""Trading states (SPEC §13): the state each scope is in, one row per scope (no row: active).
Setting or ending one appends a `trading_state` event to the audit trail in the same
transaction: the row is the truth of now, the trail is its history.

Times are ISO-8601 in UTC; `figures` is the JSON of the figures that tripped a limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.core.trading_states import Scope, ScopeKind, ScopeState, TradingState
from tradepipe.journal.events import append
from tradepipe.journal.rows import to_text, utc_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal

# Who set a state.
OPERATOR = "operator"
TRIP = "trip"


@dataclass(frozen=True, slots=True)
class StateRow:
    """A scope's state as journaled: the pure `ScopeState` and where it came from."""

    state: ScopeState
    source: str  # OPERATOR or TRIP
    set_at: datetime
    limit: str | None = None  # the limit a trip reached
    figures: Mapping[str, Decimal] = field(default_factory=dict)


def set_trading_state(
    journal: Journal,
    state: ScopeState,
    *,
    source: str,
    at: datetime,
    limit: str | None = None,
    figures: Mapping[str, Decimal] | None = None,
) -> StateRow:
    """Journal `state` as its scope's state now (replacing the scope's former one) with an
    audit event, in one transaction."""
    figures = dict(figures or {})
    scope = state.scope
    with journal.transaction():
        journal.conn.execute(
            "INSERT OR REPLACE INTO trading_states (scope_kind, scope_name, state, reason,"
            " source, limit_name, figures, set_at, until_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(scope.kind),
                scope.name,
                str(state.state),
                state.reason,
                source,
                limit,
                json.dumps(figures, default=to_text, sort_keys=True) if figures else None,
                utc_text(at),
                utc_text(state.until_at) if state.until_at is not None else None,
            ),
        )
        append(
            journal.conn,
            "trading_state",
            str(scope),
            {
                "state": str(state.state),
                "reason": state.reason,
                "source": source,
                "limit": limit,
                "figures": figures or None,
                "until_at": state.until_at,
            },
            at,
            group=journal.group,
        )
    return StateRow(state, source, at, limit, figures)


def end_trading_state(
    journal: Journal, scope: Scope, *, source: str, at: datetime, reason: str
) -> bool:
    """The scope goes back to active; False when it was active already (nothing journaled)."""
    with journal.transaction():
        cursor = journal.conn.execute(
            "DELETE FROM trading_states WHERE scope_kind = ? AND scope_name = ?",
            (str(scope.kind), scope.name),
        )
        if cursor.rowcount == 0:
            return False
        append(
            journal.conn,
            "trading_state",
            str(scope),
            {"state": str(TradingState.ACTIVE), "reason": reason, "source": source},
            at,
            group=journal.group,
        )
    return True


def trading_states(journal: Journal) -> list[StateRow]:
    """Every scope's journaled state (scopes without a row are active), broadest first."""
    rows = journal.conn.execute(
        "SELECT scope_kind, scope_name, state, reason, source, limit_name, figures, set_at,"
        " until_at FROM trading_states"
    ).fetchall()
    found = [
        StateRow(
            state=ScopeState(
                scope=Scope(ScopeKind(row[0]), str(row[1])),
                state=TradingState(row[2]),
                reason=str(row[3]),
                until_at=datetime.fromisoformat(row[8]) if row[8] is not None else None,
            ),
            source=str(row[4]),
            set_at=datetime.fromisoformat(str(row[7])),
            limit=row[5],
            figures={k: Decimal(str(v)) for k, v in json.loads(row[6]).items()} if row[6] else {},
        )
        for row in rows
    ]
    order = list(ScopeKind)
    return sorted(found, key=lambda r: (order.index(r.state.scope.kind), r.state.scope.name))


def state_row_json(row: StateRow) -> dict[str, Any]:
    """A scope's state as `tradepipe status --json`, `/healthz` and the halt commands show it."""
    state = row.state
    return {
        "scope": str(state.scope.kind),
        "name": state.scope.name or None,
        "state": str(state.state),
        "reason": state.reason,
        "source": row.source,
        "set_at": row.set_at.isoformat(),
        "until_at": state.until_at.isoformat() if state.until_at is not None else None,
        "limit": row.limit,
        "figures": {k: to_text(v) for k, v in row.figures.items()},
    }
