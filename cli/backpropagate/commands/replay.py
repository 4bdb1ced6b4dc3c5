"""`backprop replay`: run an earlier run again, with its resolved settings and the same data."""

from typing import Annotated

import typer

from backpropagate.commands._options import GpusOpt, JsonOpt, OutputOpt, ReportToOpt, RuntimeOpt
from backpropagate.commands._run import run_and_report
from backpropagate.config import command_settings, output_dir
from backpropagate.options import option_for
from backpropagate.output import Output
from backpropagate.runs.plan import plan_replay

EXAMPLES = """
Examples:

  backprop replay 3f2a

  backprop replay 3f2a --steps 500 --allow-changed-data
"""


def replay(
    run: Annotated[str, typer.Argument(help="Run id, or any unique prefix of it.")],
    steps: Annotated[int | None, typer.Option(min=option_for("training.steps").limit.low,
                                              help="Train this many steps instead of the run's.")] = None,
    allow_changed_data: Annotated[bool, typer.Option("--allow-changed-data",
                                                     help="Replay even if the dataset file changed since.")] = False,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
    gpus: GpusOpt = None,
    report_to: ReportToOpt = None,
) -> None:
    """Start a new run with the same model, data file (checked by sha256) and settings as RUN."""
    settings = command_settings(output, json_output, runtime, gpus, report_to)
    plan = plan_replay(output_dir(settings), run, steps, allow_changed_data)
    run_and_report(Output(json_mode=settings.log_json), plan, settings)
