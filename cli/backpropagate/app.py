"""The `backprop` command: registers the commands and prints errors once, at the top.

Known errors print as ``[CODE]: message`` plus a fix, with the code's exit status;
``--verbose`` adds the traceback.
"""

import sys
import traceback
from typing import Annotated

import typer

from backpropagate import __version__
from backpropagate.commands import (
    chat,
    diff_runs,
    export,
    export_runs,
    images,
    info,
    list_runs,
    ollama,
    push,
    replay,
    resume,
    show_run,
    train,
    validate,
)
from backpropagate.commands import eval as eval_command  # not to shadow the builtin
from backpropagate.contract.errors import EXIT_INTERRUPTED, BackpropError

app = typer.Typer(
    name="backprop",
    help="Train a LoRA adapter from a JSONL file and ship it to Ollama.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("train", epilog=train.EXAMPLES)(train.train)
app.command("resume", epilog=resume.EXAMPLES)(resume.resume)
app.command("export", epilog=export.EXAMPLES)(export.export)
app.command("chat", epilog=chat.EXAMPLES)(chat.chat)
app.command("eval", epilog=eval_command.EXAMPLES)(eval_command.eval_run)
app.command("validate", epilog=validate.EXAMPLES)(validate.validate)
app.command("list-runs", epilog=list_runs.EXAMPLES)(list_runs.list_runs)
app.command("show-run", epilog=show_run.EXAMPLES)(show_run.show_run)
app.command("diff-runs", epilog=diff_runs.EXAMPLES)(diff_runs.diff_runs)
app.command("replay", epilog=replay.EXAMPLES)(replay.replay)
app.command("export-runs", epilog=export_runs.EXAMPLES)(export_runs.export_runs)
app.command("info")(info.info)
app.command("push", epilog=push.EXAMPLES)(push.push_command)
app.add_typer(ollama.app, name="ollama")
app.add_typer(images.app, name="images")

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


def main() -> None:
    # Typer (standalone mode) prints usage errors itself and exits 2; our coded errors come out here.
    try:
        app()
    except BackpropError as error:
        if _verbose["on"]:
            traceback.print_exc()
        print(error.render(), file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
