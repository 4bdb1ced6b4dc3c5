"""The four dataset formats: how a row is recognised, checked and turned into an Example.

A row is one JSON value. ``parse_row`` decides its format from the keys it
carries, checks every field, and either returns an ``Example`` or raises
``RowInvalid`` with a reason precise enough to fix the row by hand. The file
and line are added by the reader, which knows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FORMATS = ("sharegpt", "openai", "alpaca", "text")

# The keys that mark each format, checked in this order. Alpaca rows often
# carry a pre-rendered `text` column as well, so alpaca has to win over text.
_MARKERS = {
    "sharegpt": ("conversations",),
    "openai": ("messages",),
    "alpaca": ("instruction", "output"),
    "text": ("text",),
}
_EXPECTED = "'conversations' (sharegpt), 'messages' (openai), 'instruction' and 'output' (alpaca), or 'text' (text)"

# Role names as they appear in the file, mapped to the roles an Example uses.
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line in the file where the row starts
    messages: tuple[Message, ...] = ()  # chat formats (sharegpt, openai, alpaca)
    text: str | None = None  # raw text format


class RowInvalid(Exception):
    """Why one row cannot be used. The message is the reason the user reads."""


class RowOfAnotherFormat(RowInvalid):
    """A well-formed row of another format than the file's."""

    def __init__(self, message: str, found: str) -> None:
        super().__init__(message)
        self.found = found


def parse_row(value: object, line: int, expected: str | None = None, origin: str = "") -> tuple[str, Example]:
    """Check one row and return its format and Example.

    ``expected`` is the file's format once it is known (from the first valid
    row, or forced by the caller); ``origin`` says where it came from, for
    the message when a row does not match it.
    """
    if not isinstance(value, dict):
        raise RowInvalid(f"row must be a JSON object, got {_kind(value)}")
    # A row that carries the expected format's keys is read as that format,
    # even if it would be detected as another (alpaca rows with a text column).
    found = expected if expected and _has_markers(value, expected) else _detect(value)
    if expected and found != expected:
        raise RowOfAnotherFormat(f"row is {found} but the file is {expected} ({origin})", found)
    if found == "text":
        return found, Example(line, text=_text(value))
    return found, Example(line, messages=_READERS[found](value))


def _has_markers(row: dict, fmt: str) -> bool:
    return all(key in row for key in _MARKERS[fmt])


def _detect(row: dict) -> str:
    for fmt in FORMATS:
        if _has_markers(row, fmt):
            return fmt
    keys = ", ".join(repr(key) for key in row)
    found = f"found keys {keys}" if keys else "found no keys"
    raise RowInvalid(f"no known format: {found}; expected {_EXPECTED}")


def _sharegpt(row: dict) -> tuple[Message, ...]:
    return _conversation(row, "conversations", "from", "value", _SHAREGPT_ROLES)


def _openai(row: dict) -> tuple[Message, ...]:
    return _conversation(row, "messages", "role", "content", _OPENAI_ROLES)


def _conversation(row: dict, field: str, role_key: str, content_key: str, roles: dict[str, str]) -> tuple[Message, ...]:
    """Read a list of turns; ShareGPT and OpenAI differ only in key and role names."""
    turns = row[field]
    if not isinstance(turns, list):
        raise RowInvalid(f"{field} must be a list, got {_kind(turns)}")
    if not turns:
        raise RowInvalid(f"{field} is empty")
    messages = []
    for index, turn in enumerate(turns):
        where = f"{field}[{index}]"
        if not isinstance(turn, dict):
            raise RowInvalid(f"{where} must be an object, got {_kind(turn)}")
        name = _string(turn, role_key, where)
        if name not in roles:
            raise RowInvalid(f"{where}.{role_key} has unknown role {name!r}; expected {_or(roles)}")
        content = _string(turn, content_key, where)
        role = roles[name]
        # Only assistant turns carry the loss; an empty one teaches the model
        # to stop talking, which is almost always a broken export.
        if role == "assistant" and not content.strip():
            raise RowInvalid(f"{where} (assistant) is empty")
        messages.append(Message(role, content))
    if not any(message.role == "assistant" for message in messages):
        names = _or([name for name, role in roles.items() if role == "assistant"])
        raise RowInvalid(f"{field} has no assistant turn ({role_key!r}: {names}), so there is nothing to train on")
    return tuple(messages)


def _alpaca(row: dict) -> tuple[Message, ...]:
    instruction = _string(row, "instruction")
    output = _string(row, "output")
    extra = row.get("input")
    if extra is None:
        extra = ""
    elif not isinstance(extra, str):
        raise RowInvalid(f"input must be a string, got {_kind(extra)}")
    if not output.strip():
        raise RowInvalid("output (assistant) is empty")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return (Message("user", prompt), Message("assistant", output))


def _text(row: dict) -> str:
    text = _string(row, "text")
    if not text.strip():
        raise RowInvalid("text is empty")
    return text


_READERS = {"sharegpt": _sharegpt, "openai": _openai, "alpaca": _alpaca}


def _string(obj: dict, key: str, where: str = "") -> str:
    if key not in obj:
        raise RowInvalid(f"{where or 'row'} has no {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        name = f"{where}.{key}" if where else key
        raise RowInvalid(f"{name} must be a string, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    """The JSON type of a value, in the words a dataset author uses."""
    if value is None:
        return "null"
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _or(names: Iterable[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
