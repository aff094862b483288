"""sqlite-utils, imported without pandas and numpy.

sqlite-utils imports both as soon as they are installed, to map their types (tradepipe never
stores them), and alpaca-py installs them: that cost every `tradepipe serve` about 0.5 s of
start-up and 45 MB of memory. They are hidden for this one import only, so an Alpaca account
still imports them when it connects.
"""

from __future__ import annotations

import sys

_hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]  # the import system's "not installed"
try:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations
finally:
    for _name in _hidden:
        del sys.modules[_name]

__all__ = ["Database", "Migrations"]
