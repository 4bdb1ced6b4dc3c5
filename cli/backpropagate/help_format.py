"""How `--help` reads: options under the panels their declarations name, defaults, ranges and what a value takes
written one way, and examples printed as written so that a pasted line runs.

Plain text, as click writes it (rich would cost every `--help` its import): the panels are the
``rich_help_panel`` each option carries, which a run option takes from its ``group=`` in the settings
declaration. A command's own options come first, under "Options".
"""

from typing import Any

import typer
from typer._click import formatting
from typer.core import TyperCommand, TyperGroup

from backpropagate.options import shown_value

# typer's type names, as a person reads them after a flag.
_VALUE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "FILE",
                "directory": "DIR", "bool": "BOOLEAN"}


def value_word(param: Any, ctx: Any) -> str:
    """What an option takes: its choices (``auto|cpu|cuda``) or a word such as INTEGER or PATH, never a Python type."""
    label = str(param.display_type_rich(ctx=ctx) or "").strip("<>").removesuffix("...")
    if label.startswith("list[") and label.endswith("]"):
        label = label[len("list["):-1]
    label = label.removesuffix(" range")
    return _VALUE_WORDS.get(label.lower(), label)


def _range(param: Any) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _default(param: Any) -> str:
    """The default as `[default X]` shows it; "" when there is none to show (a plain switch is off)."""
    default = param.default
    if default is None or param.required or not getattr(param, "show_default", True):
        return ""
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None):
        return ""
    if isinstance(default, (list, tuple)) and not default:
        return ""
    return shown_value(tuple(str(d) for d in default) if isinstance(default, (list, tuple)) else default)


def help_record(param: Any, ctx: Any) -> tuple[str, str] | None:
    """One line of the option list: its spellings and value, and its help with [default X; range; required]."""
    if getattr(param, "hidden", False):
        return None
    if param.param_type_name == "argument":
        names = param.name.upper()
    else:
        names = formatting.join_options(param.opts)[0]
        if param.secondary_opts:
            names += " / " + formatting.join_options(param.secondary_opts)[0]
        if not param.is_flag:
            names += " " + value_word(param, ctx)
    text = param.help or ""
    extras = [_range(param)] if _range(param) else []
    extras += ["required"] if param.required else []
    written = text.rfind("[default ")
    if written >= 0 and extras and "]" in text[written:]:  # the help states its default: one bracket for all
        close = text.index("]", written)
        return names, f"{text[:close]}; {'; '.join(extras)}{text[close:]}"
    default = _default(param) if written < 0 else ""
    extras = ([f"default {default}"] if default else []) + extras
    if extras:
        text = f"{text} [{'; '.join(extras)}]".strip()
    return names, text


def write_rows(formatter: Any, rows: list[tuple[str, str]], col_max: int = 30) -> None:
    """click's two columns, wrapped only between words: an environment variable or a flag such as
    --batch-size is never cut in two."""
    import textwrap

    indent = formatter.current_indent
    first = min(max(len(name) for name, _ in rows), col_max)
    width = max(formatter.width - indent - first - 2, 20)
    for name, text in rows:
        lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]
        if len(name) <= first:
            formatter.write(f"{'':{indent}}{name:{first}}  {lines[0]}\n")
            lines = lines[1:]
        else:
            formatter.write(f"{'':{indent}}{name}\n")
        for line in lines:
            formatter.write(f"{'':{indent + first + 2}}{line}\n")


def write_examples(epilog: str, formatter: Any) -> None:
    """Examples as written, line by line: never re-wrapped, so a pasted line is the whole command."""
    formatter.write("\n")
    for line in epilog.strip("\n").splitlines():
        formatter.write(f"{line}\n" if line.strip() else "\n")


class PanelCommand(TyperCommand):
    def format_options(self, ctx, formatter) -> None:
        arguments, panels = [], {"Options": []}
        for param in self.get_params(ctx):
            record = help_record(param, ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                write_rows(formatter, arguments)
        for title, records in panels.items():
            if records:
                with formatter.section(title):
                    write_rows(formatter, records)

    def format_epilog(self, ctx, formatter) -> None:
        if self.epilog:
            write_examples(self.epilog, formatter)


class PanelGroup(TyperGroup):
    """A group (`backprop`, `backprop ollama`): its commands under the panels they were registered with."""

    def format_commands(self, ctx, formatter) -> None:
        panels: dict[str, list] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            panel = getattr(command, "rich_help_panel", None) or "Commands"
            panels.setdefault(panel, []).append((name, command.get_short_help_str(limit=formatter.width)))
        for title, rows in panels.items():
            with formatter.section(title):
                write_rows(formatter, rows)

    def format_epilog(self, ctx, formatter) -> None:
        if self.epilog:
            write_examples(self.epilog, formatter)


def use_panels(app: typer.Typer) -> None:
    """Every command of ``app`` and of its sub-apps formats its help as above."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = PanelCommand
    if not isinstance(app.info.cls, type) or app.info.cls is TyperGroup:  # typer's placeholder, or its own
        app.info.cls = PanelGroup
    for group in app.registered_groups:
        if not isinstance(group.cls, type) or group.cls is TyperGroup:
            group.cls = PanelGroup
        use_panels(group.typer_instance)
