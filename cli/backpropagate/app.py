"""The `backprop` command: registers the commands and prints errors once, at the top.

Known errors print as ``[CODE]: message`` plus a fix, with the code's exit status;
``--verbose`` adds the traceback.
"""

import signal
import sys
import traceback
from typing import Annotated

import typer
from typer._click.exceptions import ClickException

from backpropagate import __version__
from backpropagate.commands import (
    chat,
    diff_runs,
    export,
    export_runs,
    images,
    info,
    k8s,
    list_runs,
    multi_run,
    ollama,
    plan,
    presets,
    push,
    replay,
    resume,
    show_run,
    train,
    ui,
    validate,
)
from backpropagate.commands import eval as eval_command  # not to shadow the builtin
from backpropagate.contract.errors import EXIT_INTERRUPTED, BackpropError
from backpropagate.help_format import use_panels
from backpropagate.output import Output, json_asked

app = typer.Typer(
    name="backprop",
    help="Train a LoRA adapter from a JSONL file and ship it to Ollama.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# The commands under the panels `backprop --help` lists them in: (name, function, examples).
PANELS = {
    "Train": [("train", train.train, train.EXAMPLES), ("resume", resume.resume, resume.EXAMPLES),
              ("multi-run", multi_run.multi_run, multi_run.EXAMPLES),
              ("validate", validate.validate, validate.EXAMPLES), ("plan", plan.plan, plan.EXAMPLES),
              ("presets", presets.presets_command, presets.EXAMPLES)],
    "Export and share": [("export", export.export, export.EXAMPLES), ("chat", chat.chat, chat.EXAMPLES),
                         ("eval", eval_command.eval_run, eval_command.EXAMPLES),
                         ("push", push.push_command, push.EXAMPLES), ("ollama", ollama.app, None)],
    "Runs": [("list-runs", list_runs.list_runs, list_runs.EXAMPLES), ("show-run", show_run.show_run, show_run.EXAMPLES),
             ("diff-runs", diff_runs.diff_runs, diff_runs.EXAMPLES), ("replay", replay.replay, replay.EXAMPLES),
             ("export-runs", export_runs.export_runs, export_runs.EXAMPLES), ("ui", ui.ui, ui.EXAMPLES)],
    "Set-up": [("info", info.info, None), ("images", images.app, None), ("k8s", k8s.app, None)],
}
for panel, commands in PANELS.items():
    for name, command, examples in commands:
        if isinstance(command, typer.Typer):  # a command group keeps its own examples
            app.add_typer(command, name=name, rich_help_panel=panel)
        else:
            app.command(name, epilog=examples, rich_help_panel=panel)(command)
use_panels(app)

_verbose = {"on": False}


def _show_version(value: bool) -> None:
    if value:
        print(f"backpropagate {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks with errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _verbose["on"] = _verbose["on"] or verbose


def _stop_like_ctrl_c(signum, frame) -> None:
    raise KeyboardInterrupt


def _treat_stop_signals_as_ctrl_c() -> None:
    """SIGTERM (a service manager, `kill`) and SIGHUP (a closed terminal) end a command as Ctrl-C does:
    the stage is stopped, the run marked interrupted, the resume line printed, exit 130. A signal the
    caller set to be ignored (SIGHUP under nohup) stays ignored."""
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _stop_like_ctrl_c)


def main() -> None:
    _treat_stop_signals_as_ctrl_c()
    # Not standalone: a flag value click or pydantic refuses becomes a coded error too; other usage
    # errors (an unknown command or flag) are printed as click prints them, and exit 2.
    try:
        code = app(standalone_mode=False)
    except typer.BadParameter as refused:
        error = _value_error(refused)
        Output(json_mode=json_asked()).failure(error)
        sys.exit(error.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BackpropError as error:
        if _verbose["on"]:
            traceback.print_exc()
        Output(json_mode=json_asked()).failure(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except ClickException as usage:
        usage.show()
        sys.exit(usage.exit_code)
    if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt it meets into exit 130, without a word
        print("interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


def _value_error(refused: "typer.BadParameter") -> BackpropError:
    name = refused.param.opts[0] if refused.param is not None and refused.param.opts else "the value"
    return BackpropError("CONFIG_VALUE_INVALID", name=name, value=_given(name), reason=refused.message,
                         allowed=f"{_what_it_takes(refused.__cause__)} for {name}")


def _what_it_takes(cause: BaseException | None) -> str:
    """Read off pydantic's error, which typer wraps: what the flag takes, in words."""
    details = cause.errors()[0] if hasattr(cause, "errors") else {}
    kind, ctx = details.get("type", ""), details.get("ctx", {})
    if kind.startswith("float"):
        return "a number (such as 2e-4)"
    if kind.startswith("int"):
        return "a whole number"
    if kind.startswith("bool"):
        return "true or false"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"a number {words} {ctx.get(key)}"
    if kind in ("enum", "literal_error"):
        return f"one of {ctx.get('expected')}"
    return "a value of the kind `--help` names"


def _given(name: str) -> str:
    """The text the user gave for the flag, as typed: `--flag VALUE` or `--flag=VALUE`."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return ""
