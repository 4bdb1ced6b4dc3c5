"""A renderer for the subset of Go's text/template that Ollama chat templates use.

It exists to check, here and without Ollama, that an emitted template produces
the same prompt as the tokenizer's own chat template. It follows text/template's
rules for what it supports: ``{{-``/``-}}`` trimming, ``if``/``else if``/``else``,
``range`` (with ``$i, $x :=`` and ``else``), ``continue``/``break``, variables
declared with ``:=`` and re-assigned with ``=`` (visible until their ``end``),
fields of ``.``, ``$`` and variables, string, integer and boolean literals, parentheses,
and the functions ``eq ne and or not len slice index printf``. Anything else is
refused with ``ValueError`` rather than guessed.
"""

import re
from dataclasses import dataclass, field
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+)|(?P<open>\()|(?P<close>\))'
                    r'|(?P<word>\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\$(?:\.[A-Za-z_][A-Za-z0-9_]*)*'
                    r'|\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?))')
_WHITESPACE = " \t\r\n"


@dataclass
class _Node:
    kind: str  # text, output, assign, declare, if, range, continue, break
    text: str = ""
    expr: list = field(default_factory=list)
    names: list = field(default_factory=list)
    branches: list = field(default_factory=list)  # if: [(expr or None, body)]; range: [body, else body]


class _Continue(Exception):
    pass


class _Break(Exception):
    pass


def render(template: str, values: dict[str, Any]) -> str:
    """Execute ``template`` with ``values`` as dot (and ``$``)."""
    body, rest, _ = _parse(_lex(template), 0, ())
    if rest is not None:
        raise ValueError(f"unexpected {{{{ {rest} }}}}")
    out: list[str] = []
    _execute(body, values, [{"$": values}], out)
    return "".join(out)


def _lex(template: str) -> list[tuple[str, str]]:
    """Text and action tokens, with the whitespace that ``{{-`` and ``-}}`` remove already removed."""
    items: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in _ACTION.finditer(template):
        text = template[position:match.start()]
        if trim_next:
            text = text.lstrip(_WHITESPACE)
        if match.group(1):
            text = text.rstrip(_WHITESPACE)
        if text:
            items.append(("text", text))
        action = match.group(2).strip()
        if not action.startswith("/*"):
            items.append(("action", action))
        trim_next, position = bool(match.group(3)), match.end()
    text = template[position:]
    if trim_next:
        text = text.lstrip(_WHITESPACE)
    if text:
        items.append(("text", text))
    return items


def _parse(items, index: int, stop: tuple[str, ...]):
    """Nodes up to one of the ``stop`` keywords: (nodes, the stop action or None, index after it)."""
    nodes: list[_Node] = []
    while index < len(items):
        kind, content = items[index]
        index += 1
        if kind == "text":
            nodes.append(_Node("text", text=content))
            continue
        keyword = content.split(None, 1)[0]
        if keyword in ("end", "else") and keyword in stop:
            return nodes, content, index
        if keyword == "if":
            node, index = _parse_if(items, index, _expr(content[2:]))
        elif keyword == "range":
            node, index = _parse_range(items, index, content[5:].strip())
        elif keyword in ("continue", "break"):
            node = _Node(keyword)
        elif re.match(r"\$\w*\s*:?=", content):
            name, operator, expr = re.match(r"(\$\w*)\s*(:?=)\s*(.*)", content, re.S).groups()
            node = _Node("declare" if operator == ":=" else "assign", names=[name], expr=_expr(expr))
        elif keyword in ("end", "else", "with", "define", "template", "block"):
            raise ValueError(f"unsupported or unmatched {{{{ {content} }}}}")
        else:
            node = _Node("output", expr=_expr(content))
        nodes.append(node)
    return nodes, None, index


def _parse_if(items, index: int, condition: list | None) -> tuple[_Node, int]:
    branches = []
    while True:
        body, ended, index = _parse(items, index, ("end", "else"))
        branches.append((condition, body))
        if ended is None:
            raise ValueError("if without end")
        if ended == "end":
            return _Node("if", branches=branches), index
        rest = ended[4:].strip()
        if rest and not rest.startswith("if "):
            raise ValueError(f"unsupported {{{{ {ended} }}}}")
        condition = _expr(rest[3:]) if rest else None


def _parse_range(items, index: int, header: str) -> tuple[_Node, int]:
    names, expr = _range_header(header)
    body, ended, index = _parse(items, index, ("end", "else"))
    otherwise: list[_Node] = []
    if ended == "else":
        otherwise, ended, index = _parse(items, index, ("end",))
    if ended != "end":
        raise ValueError("range without end")
    return _Node("range", expr=expr, names=names, branches=[body, otherwise]), index


def _range_header(header: str) -> tuple[list[str], list]:
    match = re.match(r"(\$\w*)\s*(?:,\s*(\$\w*)\s*)?:=\s*(.*)", header, re.S)
    if match:
        names = [name for name in match.groups()[:2] if name]
        return names, _expr(match.group(3))
    return [], _expr(header)


def _expr(source: str) -> list:
    """A command as a nested list: [function, args...] or [operand]."""
    tokens = _tokens(source)
    command, position = _command(tokens, 0)
    if position != len(tokens):
        raise ValueError(f"cannot read {source!r}")
    return command


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens, position, source = [], 0, source.strip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read {source[position:]!r} (pipes and other syntax are not supported)")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(source) and source[position] in _WHITESPACE:
            position += 1
    return tokens


def _command(tokens, position: int):
    args = []
    while position < len(tokens) and tokens[position][0] != "close":
        kind, text = tokens[position]
        if kind == "open":
            inner, position = _command(tokens, position + 1)
            if position >= len(tokens) or tokens[position][0] != "close":
                raise ValueError("unclosed parenthesis")
            args.append(("call", inner))
        else:
            args.append((kind, text))
        position += 1
    return args, position


def _execute(nodes: list[_Node], dot: Any, scopes: list[dict], out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "output":
            out.append(_print(_evaluate(node.expr, dot, scopes)))
        elif node.kind == "declare":
            scopes[-1][node.names[0]] = _evaluate(node.expr, dot, scopes)
        elif node.kind == "assign":
            value = _evaluate(node.expr, dot, scopes)
            next(scope for scope in reversed(scopes) if node.names[0] in scope)[node.names[0]] = value
        elif node.kind == "if":
            for condition, body in node.branches:
                if condition is None or _truth(_evaluate(condition, dot, scopes)):
                    _execute(body, dot, scopes + [{}], out)
                    break
        elif node.kind == "range":
            _range(node, dot, scopes, out)
        elif node.kind == "continue":
            raise _Continue
        elif node.kind == "break":
            raise _Break


def _range(node: _Node, dot: Any, scopes: list[dict], out: list[str]) -> None:
    items = _evaluate(node.expr, dot, scopes)
    if not items:
        _execute(node.branches[1], dot, scopes + [{}], out)
        return
    for index, item in enumerate(items):
        scope = dict(zip(node.names, (index, item) if len(node.names) == 2 else (item,)))
        try:
            _execute(node.branches[0], item, scopes + [scope], out)
        except _Continue:
            continue
        except _Break:
            break


_CONSTANTS = {"true": True, "false": False, "nil": None}


def _evaluate(command: list, dot: Any, scopes: list[dict]) -> Any:
    head_kind, head = command[0]
    if head_kind == "word" and head in _CONSTANTS and len(command) == 1:
        return _CONSTANTS[head]
    if head_kind == "word" and not head.startswith(("$", ".")):
        args = [_operand(arg, dot, scopes) for arg in command[1:]]
        return _call(head, args)
    if len(command) != 1:
        raise ValueError(f"{head} is not a function")
    return _operand(command[0], dot, scopes)


def _operand(token, dot: Any, scopes: list[dict]) -> Any:
    kind, text = token
    if kind == "call":
        return _evaluate(text, dot, scopes)
    if kind == "str":
        return bytes(text[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    if kind == "num":
        return int(text)
    if text == ".":
        return dot
    if text.startswith("."):
        value, path = dot, text[1:].split(".")
    else:
        name, *path = text.split(".")
        value = next((scope[name] for scope in reversed(scopes) if name in scope), None)
        if value is None and not any(name in scope for scope in scopes):
            raise ValueError(f"undefined variable {name}")
    for part in path:
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def _call(name: str, args: list) -> Any:
    if name == "eq":
        return any(args[0] == other for other in args[1:])
    if name == "ne":
        return args[0] != args[1]
    if name == "not":
        return not _truth(args[0])
    if name == "and":
        return next((arg for arg in args if not _truth(arg)), args[-1])
    if name == "or":
        return next((arg for arg in args if _truth(arg)), args[-1])
    if name == "len":
        return len(args[0])
    if name == "slice":
        return args[0][args[1] if len(args) > 1 else 0:args[2] if len(args) > 2 else None]
    if name == "index":
        value = args[0]
        for key in args[1:]:
            value = value[key]
        return value
    if name == "printf":  # %s only: what chat templates use
        values = iter(args[1:])
        return re.sub(r"%[s%]", lambda m: "%" if m.group() == "%%" else _print(next(values)), args[0])
    raise ValueError(f"function {name} is not supported")


def _truth(value: Any) -> bool:
    return bool(value)  # Go: false, 0, nil and empty strings, slices and maps are false, like Python


def _print(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
