"""Text a terminal is sent: control characters in user text are written out, never obeyed.

A file name, a model id or a library's message may hold ANSI escapes (which clear the
screen or recolour it), carriage returns, bidi overrides or newlines (which split a table
row). Everything printed for people passes ``printable``; a value shown inside one line
(a table cell, an error message) passes ``one_line``, which writes out newlines too.
"""

import re

# C0 and C1 controls, DEL, and the bidi marks that reorder what is shown.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[{_CONTROLS}]")  # tab and newline kept: the text's own layout
_IN_LINE = re.compile(f"[{_CONTROLS}\t\n]")


def _written_out(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")  # "\x1b" -> "\\x1b", "\n" -> "\\n"


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline written out as an escape."""
    return _IN_TEXT.sub(_written_out, text)


def one_line(text: str) -> str:
    """``text`` with every control character, newline and tab included, written out as an escape."""
    return _IN_LINE.sub(_written_out, text)
