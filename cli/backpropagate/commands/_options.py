"""Options shared by several commands, so their names and help read the same everywhere.

A run's settings are not listed here: each is an ``Annotated`` option generated from its
declaration (contract/settings.py, config.py), and ``takes_run_options`` gives a command all of them.
"""

import inspect
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.options import RunOption, flagged_options, grouped_options, option_for, run_options
from backpropagate.output import remember_json_flag


def option_help(option: RunOption) -> str:
    """The option's help, with its default and its variable written one way for all (its choices are its
    value's name: ``--device auto|cpu|cuda``)."""
    return f"{option.help} [default {option.shown_default()}; env {option.env}]"


def setting_option(option: RunOption, **extra) -> type:
    """The option type of a declared setting: None when not given, so the environment and defaults still apply."""
    names = [f"{option.flag}/{option.off_flag}" if option.off_flag else option.flag] + (
        [option.short] if option.short else [])
    python_type = {bool: bool, int: int, float: float}.get(option.kind, str)
    if option.flag == "--output":  # a folder: shown as PATH, and typed so
        python_type = Path
    choices = {"metavar": "|".join(str(c) for c in option.choices)} if option.choices else {}
    return Annotated[python_type | None, typer.Option(*names, help=option_help(option),
                                                      rich_help_panel=option.group or None, **choices, **extra)]


def takes_run_options(command=None, *, only: tuple[str, ...] | None = None, campaign: bool = False):
    """Give ``command`` every run option of the declaration as a keyword parameter; it takes them as ``**options``.

    Parameters the command declares itself keep their place; the rest follow in the declaration's group
    order, so a setting added to the declaration is a flag of every command that runs training. ``only``
    names the options of a command that reads just those (`plan` takes what decides a run's memory);
    ``campaign`` adds the campaign options (`multi-run`).
    """
    if command is None:
        return lambda command: takes_run_options(command, only=only, campaign=campaign)
    own = [p for p in inspect.signature(command).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in own}
    options = grouped_options() if campaign else run_options()
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=setting_option(option), default=None)
             for name, option in options.items() if name not in taken and (only is None or name in only)]
    command.__signature__ = inspect.Signature(own + added)
    return command


OutputOpt = setting_option(option_for("output"))
JsonOpt = setting_option(flagged_options()["log_json"], callback=remember_json_flag)
RuntimeOpt = setting_option(option_for("runtime"))
GpusOpt = setting_option(option_for("docker.gpus"))
ReportToOpt = setting_option(option_for("report_to"))
# readable=False: the dataset reader refuses an unreadable file itself, with a coded error and the chmod.
DataOpt = Annotated[Path, typer.Option("--data", "-d", readable=False,
                                       help="Dataset: JSONL or a JSON array (ShareGPT, OpenAI chat, Alpaca or "
                                            "raw text).")]
FormatOpt = Annotated[str, typer.Option("--format", help="Dataset format: auto, sharegpt, openai, alpaca or text.")]
SkipInvalidOpt = Annotated[bool, typer.Option("--skip-invalid", help="Drop invalid rows and report how many, "
                                                                     "instead of stopping at the first.")]
WorkersOpt = setting_option(option_for("workers"))
RayAddressOpt = setting_option(option_for("ray_address"))
RayMaxFailuresOpt = setting_option(option_for("ray_max_failures"))
