"""Pause points for crash drills: `TRADEPIPE_DRILL_PAUSE_AT=submit tradepipe serve` stops the
engine at that step (the webhook keeps answering) so a test can `kill -9` the process there and
prove that the next start settles the work without a lost signal or a second order.

Inert unless the variable is set; read once at import.
"""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger(__name__)

# dispatch: a signal is acknowledged, no delivery made yet
# submit:   the plan and the order are journaled, the broker has not been called
# answer:   the broker has the order, its answer is not journaled yet
# notify:   a notification is journaled with its cause and on disk, not sent yet
POINTS = ("dispatch", "submit", "answer", "notify")
PAUSE_AT = os.environ.get("TRADEPIPE_DRILL_PAUSE_AT")
if PAUSE_AT is not None and PAUSE_AT not in POINTS:  # a typo must not make a drill pass
    raise ValueError(f"TRADEPIPE_DRILL_PAUSE_AT={PAUSE_AT!r} is not one of {', '.join(POINTS)}")


async def pause_point(name: str) -> None:
    if name == PAUSE_AT:
        log.warning("drill: paused at %r (TRADEPIPE_DRILL_PAUSE_AT); waiting for kill -9", name)
        await asyncio.Event().wait()
