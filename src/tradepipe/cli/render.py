"""Data on the terminal: every value the CLI prints from the journal, a broker or the config goes
through here, so that markup in it (`[/]`, `[bold]`) is shown as text and control characters
(newlines, ESC sequences, bidi overrides) are shown as visible escapes instead of acting.

The CLI writes its own styling as rich markup in a template and passes data as arguments:
`markup("[bold]{}[/] → {}", name, status)` escapes the arguments, never the template. Table
cells go through `cell`, which makes a `Text` (never parsed as markup).
"""

from __future__ import annotations

import string
from typing import Any

from rich.markup import escape
from rich.text import Text

# Characters that move the cursor, start a terminal escape sequence or reorder the text around
# them: C0/C1 controls and DEL, the Unicode bidi embeddings, overrides, isolates and marks, and
# the line and paragraph separators.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_VISIBLE = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x20), *range(0x7F, 0xA0), *map(ord, _BIDI)]
}


def printable(value: Any) -> str:
    """`value` as text whose every character shows as itself: controls become `\\n`, `\\x1b`,
    `\\u202e`…; markup is left alone (for `Text`, which does not parse it)."""
    return "" if value is None else str(value).translate(_VISIBLE)


def data(value: Any) -> str:
    """`value` ready to sit inside rich markup: printable, and its brackets escaped."""
    return escape(printable(value))


class _DataFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return data(format(value, format_spec))


_FORMATTER = _DataFormatter()


def markup(template: str, /, *args: Any, **kwargs: Any) -> str:
    """`template.format(*args, **kwargs)` with every argument escaped by `data`: the template's
    markup styles, the arguments are only ever shown."""
    return _FORMATTER.format(template, *args, **kwargs)


def styled(value: Any, style: str) -> Text:
    """A value in a style (a status in its colour, a signed quantity), for a table cell."""
    return Text(printable(value), style=style)


def coloured(value: Any, style: str) -> str:
    """A value in a style, as markup to put in a template's text (`markup` would escape it)."""
    return f"[{style}]{data(value)}[/]"


def cell(value: Any) -> Text:
    """A table cell: `Text` passes as it is, None is empty, anything else is shown as text."""
    return value if isinstance(value, Text) else Text(printable(value))
