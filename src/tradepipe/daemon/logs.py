"""The daemon's log lines: one event, one line, whatever a request put into the message.

A value that came from a request (a field name, an error message quoting it) may hold a newline
or another control character; written as is it could forge a log line (and a lone surrogate
would make the write itself fail). The formatter escapes
them in the message (a traceback, ours, keeps its lines).
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Control characters, line separators, and lone surrogates (which a UTF-8 stream cannot write).
_CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff]")


def escape_control(text: str) -> str:
    r"""Control characters as escapes: "a\nb" becomes "a\\nb"."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    # Spelled by hand: the unicode_escape codec is imported on first use, which needs a free
    # descriptor, and a log line about running out of them is exactly when there is none.
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    return named or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)


def configure_logging(*, debug: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
