"""`backprop resume`: continue a failed or interrupted run from its newest valid checkpoint."""

from typing import Annotated

import typer

from backpropagate.commands._options import GpusOpt, JsonOpt, OutputOpt, ReportToOpt, RuntimeOpt
from backpropagate.commands._run import run_and_report
from backpropagate.config import command_settings, output_dir
from backpropagate.output import Output
from backpropagate.runs.plan import plan_resume

EXAMPLES = """
Examples:

  backprop resume 3f2a

  backprop resume 3f2a9c1e --output runs --json
"""


def resume(
    run: Annotated[str, typer.Argument(help="Run id, or any unique prefix of it.")],
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
    gpus: GpusOpt = None,
    report_to: ReportToOpt = None,
) -> None:
    """Continue a failed or interrupted run with the same settings and data order."""
    settings = command_settings(output, json_output, runtime, gpus, report_to)
    run_and_report(Output(json_mode=settings.log_json), plan_resume(output_dir(settings), run), settings)
