"""`--help` as people read it: options under their declaration's panels, one way of writing defaults and values,
and examples that run when pasted."""

import re
import shlex

import pytest
import typer
from backpropagate.app import app
from backpropagate.contract.settings import GROUPS
from backpropagate.options import run_options
from typer.core import TyperGroup as Group

from tests.conftest import run_cli

CLI = typer.main.get_command(app)


def every_command(group=CLI, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, Group):
            yield from every_command(command, (*path, name))


COMMANDS = dict(every_command())


def example_lines(command) -> list[str]:
    """The command lines of an epilog's examples (an environment assignment may lead)."""
    lines = [line.strip() for line in (command.epilog or "").splitlines()]
    return [line for line in lines if re.match(r"^([A-Z_]+=\S+ )*backprop ", line)]


def help_of(*words: str, columns: int = 100) -> str:
    result = run_cli(*words, "--help", env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("path", [path for path, command in COMMANDS.items() if example_lines(command)],
                         ids=lambda path: " ".join(path))
def test_each_help_example_parses_with_the_real_cli(path):
    for line in example_lines(COMMANDS[path]):
        words = shlex.split(line, comments=True)
        for operator in (">", "&&", "|"):  # the example goes on in the shell: only its backprop part is ours
            words = words[:words.index(operator)] if operator in words else words
        while "=" in words[0]:
            words.pop(0)
        assert words.pop(0) == "backprop", line
        command, name = CLI, "backprop"
        while isinstance(command, Group):
            name = words.pop(0)
            command = command.commands[name]
        # click's own parser checks every flag, value, choice and count; nothing is run.
        with command.make_context(name, words) as context:
            assert context.params is not None, line


def test_examples_are_printed_whole_even_on_a_narrow_terminal():
    for words in (("train",), ("ollama",), ("ui",), ("push",)):
        shown = help_of(*words, columns=60)
        command = COMMANDS[words]
        for line in example_lines(command):
            assert f"  {line}\n" in shown, line


def test_train_help_groups_the_run_options_under_their_declared_panels():
    shown = help_of("train")
    for group in GROUPS:
        flags = [option.flag for option in run_options().values() if option.group == group]
        if not flags:
            continue
        panel = shown.split(f"\n{group}:\n")[1].split("\n\n")[0]
        for flag in flags:
            assert re.search(rf"^  (-\w, )?{flag}\b", panel, re.M), (group, flag)


def test_help_writes_defaults_choices_and_values_one_way_without_python_types():
    for path, command in COMMANDS.items():
        shown = help_of(*path)
        assert "[default:" not in shown and "(default:" not in shown and "One of:" not in shown, path
        assert not re.search(r"<(str|int|float|path|list\[|bool)", shown), path
        assert not re.search(r"\]\s*\.?\s*\[default", shown), path  # never two defaults at once
    train = help_of("train")
    assert re.search(r"--device auto\|cpu\|cuda\s+Where training runs", train)
    assert "--steps INTEGER" in train and "-o, --output PATH" in train
    assert "--merge TEXT" in help_of("multi-run") and help_of("multi-run").count("[default slao") == 1


def test_help_never_cuts_a_flag_or_a_variable_across_lines():
    shown = help_of("train", columns=80)
    assert "BACKPROPAGATE_TRAINING__GRADIENT_ACCUMULATION]" in shown
    assert not re.search(r"--[a-z]+-\n", shown)
