"""Strict conversion between plain data (JSON, environment strings) and frozen dataclasses.

Settings and stage specs are frozen dataclasses. This module turns a dict into one,
collecting every problem (unknown key, wrong type, value out of range) in one pass
instead of stopping at the first, and turns environment strings into typed values.
A field may carry ``metadata={"check": fn, "allowed": "..."}``; ``fn(value)`` returns
a reason string when the value is not acceptable. A setting a run may override also names
its flag, help and group there (see ``field``): the CLI, the API, the web UI's form and the
settings reference are all read off that one declaration.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field(default: Any, *, check=None, allowed: str = "", help: str = "", flag: str = "", short: str = "",
          group: str = "", keyword: str = "") -> Any:
    """A dataclass field with a validity check and a description of what is allowed.

    ``flag`` makes it an option of a run: ``"--lora-r"``, or ``"--packing/--no-packing"`` for a switch;
    its API keyword is the flag's name with underscores (``lora_r``). ``short`` is a one-letter alias
    (``"-m"``), ``group`` the heading it is listed under, ``help`` one line for people; ``keyword`` names
    the API keyword where the flag's name would not say enough (``--replay`` is ``replay_fraction=``).
    """
    kwargs = {"default_factory": lambda: default} if isinstance(default, (list, dict)) else {"default": default}
    metadata = {"check": check, "allowed": allowed, "help": help, "flag": flag, "short": short, "group": group,
                "keyword": keyword}
    return dataclasses.field(metadata=metadata, **kwargs)


@dataclasses.dataclass(frozen=True)
class Limit:
    """A numeric range a value must lie in; called with a value, it returns why that value is not in it."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the range excludes low itself ("greater than 0")
    high_open: bool = False

    def __call__(self, v) -> str | None:
        if v == float("inf"):
            return "must be a finite number"  # inf would pass "> 0" and turn every weight into nan at step 1
        if self.high is not None:
            if self.high_open:
                return None if self.low <= v < self.high else f"must be in [{self.low}, {self.high})"
            return None if self.low <= v <= self.high else f"must be from {self.low} to {self.high}"
        if self.low_open:
            return None if v > self.low else f"must be greater than {self.low}"
        return None if v >= self.low else f"must be at least {self.low}"


def at_least(low) -> Limit:
    return Limit(low=low)


def between(low, high) -> Limit:
    return Limit(low=low, high=high)


positive = Limit(low=0, low_open=True)
fraction = Limit(low=0, high=1, high_open=True)


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def limit_of(f: dataclasses.Field) -> Limit | None:
    """The field's range, when its check is one (what a form's min and max are drawn from)."""
    check = f.metadata.get("check")
    return check if isinstance(check, Limit) else None


def allowed_text(f: dataclasses.Field) -> str:
    """Human text for what a field accepts, used in error fixes."""
    if f.metadata.get("allowed"):
        return f.metadata["allowed"]
    choices = literal_choices(_resolved_type(f))
    if choices:
        return "one of " + ", ".join(str(c) for c in choices)
    return _type_name(_resolved_type(f))


def value_kind(f: dataclasses.Field) -> tuple[type, bool]:
    """(int, float, bool, str or tuple, whether None is allowed): how a flag or a form field takes the value."""
    tp = _strip_optional(_resolved_type(f))
    kind = str if get_origin(tp) is Literal else tuple if get_origin(tp) is tuple else tp
    return kind, _is_optional(_resolved_type(f))


def literal_choices(tp) -> tuple:
    tp = _strip_optional(tp)
    return get_args(tp) if get_origin(tp) is Literal else ()


def parse_text(tp, text: str) -> Any:
    """Convert an environment string to ``tp``; raises ValueError with the reason."""
    tp = _strip_optional(tp) if text.strip().lower() not in ("", "none") else tp
    if _is_optional(tp) and text.strip().lower() in ("", "none"):
        return None
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("not a boolean")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("not an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("not a number") from None
    if get_origin(tp) is Literal:
        if text not in get_args(tp):
            raise ValueError("not an accepted choice")
        return text
    if get_origin(tp) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def from_dict(cls, data: Any, where: str = "") -> tuple[Any, list[str]]:
    """Build ``cls`` from ``data``. Returns (instance or None, problems)."""
    if not isinstance(data, dict):
        return None, [f"{where or 'spec'}: expected an object, got {type(data).__name__}"]
    problems: list[str] = []
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            problems.append(f"{where}{key}: unknown key (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{where}{name}: missing")
            continue
        value, errors = _convert(_resolved_type(f), data[name], f"{where}{name}")
        problems += errors
        if not errors:
            reason = f.metadata.get("check") and value is not None and f.metadata["check"](value)
            if reason:
                problems.append(f"{where}{name}: {reason}")
            values[name] = value
    if problems:
        return None, problems
    return cls(**values), []


def check_all(obj, where: str = "") -> list[str]:
    """Run every field check on an already-built dataclass (used after overrides)."""
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            problems += check_all(value, f"{where}{f.name}.")
        elif value is not None:
            choices = literal_choices(_resolved_type(f))
            reason = (f"{value!r} is not one of {', '.join(map(str, choices))}" if choices and value not in choices
                      else f.metadata.get("check") and f.metadata["check"](value))
            if reason:
                problems.append(f"{where}{f.name}: {reason}")
    return problems


def to_dict(obj) -> dict[str, Any]:
    """Plain JSON-ready data; tuples become lists."""
    return dataclasses.asdict(obj, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v
                                                                for k, v in items})


def _convert(tp, value, where) -> tuple[Any, list[str]]:
    if _is_optional(tp) and value is None:
        return None, []
    tp = _strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            return None, [f"{where}: {value!r} is not one of {', '.join(map(str, get_args(tp)))}"]
        return value, []
    if get_origin(tp) is tuple:
        item = get_args(tp)[0]
        if not isinstance(value, list) or not all(_is_instance(v, item) for v in value):
            return None, [f"{where}: expected a list of {_type_name(item)}, got {value!r}"]
        return tuple(value), []
    if get_origin(tp) is list:
        item = get_args(tp)[0]
        if not isinstance(value, list) or not all(_is_instance(v, item) for v in value):
            return None, [f"{where}: expected a list of {_type_name(item)}, got {value!r}"]
        return [float(v) for v in value] if item is float else value, []
    if get_origin(tp) is dict or tp is dict:
        if not isinstance(value, dict):
            return None, [f"{where}: expected an object, got {type(value).__name__}"]
        return value, []
    if not _is_instance(value, tp):
        return None, [f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"]
    return (float(value) if tp is float else value), []


def _is_instance(value, tp) -> bool:
    if get_origin(tp) is not None:
        tp = get_origin(tp)  # list[dict] items are checked as dicts
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _resolved_type(f: dataclasses.Field):
    # Settings and spec modules do not use postponed annotations, so field types are real types.
    if isinstance(f.type, str):
        raise TypeError(f"field {f.name} has a string annotation; drop `from __future__ import annotations`")
    return f.type


def _is_optional(tp) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


def _strip_optional(tp):
    if _is_optional(tp):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return tp


def _type_name(tp) -> str:
    tp = _strip_optional(tp)
    if get_origin(tp) is tuple:
        return f"comma-separated {_type_name(get_args(tp)[0])}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "text", list: "a list",
            dict: "an object"}.get(tp, str(tp))
