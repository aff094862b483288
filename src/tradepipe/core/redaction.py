"""Keeping a strategy's passphrase out of everything stored or shown (SPEC §3).

Pure. A body that parses has its `passphrase` field replaced; one that does not (single or
smart quotes, a trailing comma, an escaped key such as "pass\\u0070hrase") is redacted as text:
anything that looks like a passphrase key and its value, and the strategy's own passphrase
wherever it appears, escaped or not.
"""

from __future__ import annotations

import json
import re
from typing import Any

MASK = "***"
_QUOTES = "\"'`“”„‘’«»"
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
# What a lenient reader decodes: every \uXXXX, even one behind a backslash (`\\u0073` is "\\"
# then "u0073" to JSON, but "\\s" to a reader that only knows \u escapes).
_UNICODE_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4})")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
# Read on the unescaped text: a key spelled "passphrase" in any case and quotes, `:` or `=`,
# then its value: a string in straight quotes, in any other quotes, or a bare word.
_KEY_VALUE = re.compile(
    rf"passphrase[{_QUOTES}]*\s*[:=]\s*"
    rf'(?P<value>"[^"]*"?|[{_QUOTES}][^{_QUOTES}]*[{_QUOTES}]?|[^,}}\]\s]+)',
    re.IGNORECASE,
)


def redact_body(text: str, secret: str | None, *, parsed: Any = None) -> str:
    """`text` (a request body) fit to store: no passphrase value left in it.

    `parsed` is the body's JSON value when it parsed (re-serialised without its passphrase, so
    an escaped key cannot slip past)."""
    if isinstance(parsed, dict) and "passphrase" in parsed:
        try:
            text = json.dumps({**parsed, "passphrase": MASK}, ensure_ascii=False)
        except (ValueError, RecursionError):  # nested past what dumps can walk: as text
            pass
        else:
            return scrub(text, secret)
    spans: list[tuple[int, int]] = []
    for escapes in (_ESCAPE, _UNICODE_ESCAPE) if secret else (_ESCAPE,):
        plain, starts = _unescaped(text, escapes)
        found = [m.span("value") for m in _KEY_VALUE.finditer(plain)]
        if secret:
            found += _occurrences(plain, secret)
        if starts is not None:  # back to where each span is spelled in the original text
            found = [(starts[a], starts[b]) for a, b in found]
        spans += found
    if not spans:
        return scrub(text)
    return scrub(_masked(text, spans))


def scrub(text: str, secret: str | None = None) -> str:
    """`text` as valid Unicode (a lone surrogate escape becomes its `\\udc80` spelling) with
    no occurrence of `secret` left in it."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if secret:
        text = text.replace(secret, MASK)
    return text


def _occurrences(text: str, secret: str) -> list[tuple[int, int]]:
    found, start = [], text.find(secret)
    while start >= 0:
        found.append((start, start + len(secret)))
        start = text.find(secret, start + 1)
    return found


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    out, position = [], 0
    for start, end in sorted(spans):
        if end <= position:
            continue
        out.append(text[position : max(start, position)])
        out.append(MASK)
        position = end
    out.append(text[position:])
    return "".join(out)


def _unescaped(text: str, escapes: re.Pattern[str] = _ESCAPE) -> tuple[str, list[int] | None]:
    """The text with JSON escapes decoded and, for each character of it, the offset where its
    spelling begins in `text` (one more entry: the end); None when nothing was escaped."""
    if "\\" not in text:
        return text, None
    chars: list[str] = []
    starts: list[int] = []
    position = 0
    for match in escapes.finditer(text):
        chars.append(text[position : match.start()])
        starts.extend(range(position, match.start()))
        escape = match.group(1)
        if escape[0] == "u" and len(escape) == 5:
            chars.append(chr(int(escape[1:], 16)))
        else:
            chars.append(_SIMPLE_ESCAPES.get(escape, escape))
        starts.append(match.start())
        position = match.end()
    chars.append(text[position:])
    starts.extend(range(position, len(text) + 1))
    return "".join(chars), starts
