"""The one JSON decoder for what users give: nesting and number sizes bounded, every failure a ValueError.

Python's json recurses once per level of nesting (100,000 levels end in RecursionError) and
converts integers of any length (over 4300 digits a ValueError that is not a JSONDecodeError).
Here both become ``JSONTooComplex``, a row-level problem that --skip-invalid can skip.
"""

import json
import re
from typing import Any

# Deeper than any dataset row or prompt needs (a chat row with tool calls is some 6 levels),
# and far below where Python's own recursion limit would stop the decoder.
MAX_DEPTH = 64
# Python's own default limit for int(str): longer integers are refused before int() sees them.
MAX_INT_DIGITS = 4300

# A JSON string (escapes included) or one bracket: enough to follow nesting without decoding.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # what JSON allows between values
_INTEGER = re.compile(r"-?[0-9]*")


class JSONTooComplex(ValueError):
    """Well-formed JSON past a limit. ``end`` is where the value ends (None when it never closes)."""

    def __init__(self, reason: str, end: int | None = None) -> None:
        super().__init__(reason)
        self.end = end


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONTooComplex(f"an integer with {len(digits.lstrip('-')):,} digits, over the limit of "
                             f"{MAX_INT_DIGITS:,}")
    return int(digits)


_DECODER = json.JSONDecoder(parse_int=_bounded_int)


def loads(text: str) -> Any:
    """``text`` as one JSON value; json.JSONDecodeError for bad JSON, JSONTooComplex past a limit."""
    value, end = decode_at(text, 0)
    end = _WHITESPACE.match(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def decode_at(text: str, pos: int) -> tuple[Any, int]:
    """The JSON value that starts at ``pos`` (after any whitespace) and where it ends."""
    pos = _WHITESPACE.match(text, pos).end()
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except RecursionError:
        value, end = None, None
    except JSONTooComplex as exc:  # an integer too long: the value still ends somewhere, for a reader to go on
        exc.end = _nesting(text, pos)[1] if text.startswith(("[", "{"), pos) else _INTEGER.match(text, pos).end()
        raise
    if end is None or _may_be_deep(text, pos, end):
        deepest, closed = _nesting(text, pos)
        if deepest > MAX_DEPTH or end is None:
            raise JSONTooComplex(f"nested {deepest:,} levels deep, over the limit of {MAX_DEPTH}", closed)
    return value, end


def _may_be_deep(text: str, start: int, end: int) -> bool:
    # Counting brackets is cheap; only a value with more openers than the limit can be too deep.
    return text.count("[", start, end) + text.count("{", start, end) > MAX_DEPTH


def _nesting(text: str, start: int) -> tuple[int, int | None]:
    """The deepest nesting of the value at ``start``, and the position just after it (None if it never closes)."""
    depth = deepest = 0
    for token in _TOKEN.finditer(text, start):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in "]}":
            depth -= 1
            if depth == 0:
                return deepest, token.end()
        elif depth == 0:
            return deepest, token.end()  # a string at the top: it has no nesting
    return deepest, None
