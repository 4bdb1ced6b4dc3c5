"""`backprop resume`: continue a failed or interrupted run from its newest valid checkpoint, or an
unfinished multi-run campaign from where it stopped."""

from typing import Annotated

import typer

from backpropagate.commands._options import (GpusOpt, JsonOpt, OutputOpt, RayAddressOpt, RayMaxFailuresOpt, ReportToOpt,
                                             RuntimeOpt, WorkersOpt)
from backpropagate.commands._run import run_and_report
from backpropagate.commands.multi_run import report
from backpropagate.config import command_settings, output_dir, output_flag
from backpropagate.contract.history import RunHistory
from backpropagate.output import Output
from backpropagate.runs.campaign import run_campaign
from backpropagate.runs.campaign_plan import campaign_of
from backpropagate.runs.plan import plan_resume

EXAMPLES = """
Examples:

  backprop resume 3f2a

  backprop resume 3f2a9c1e --output runs --json

  backprop resume 3f2a --workers 2   # the same result on two workers: the global batch is the run's

  backprop resume 3f2a --runtime ray --ray-address HEAD:6379 --workers 4

  backprop resume 7c1d   # a campaign: its finished runs are kept, the cut-off one resumes, the rest follow
"""


def resume(
    run: Annotated[str, typer.Argument(help="Run or campaign id, or any unique prefix of it.")],
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
    gpus: GpusOpt = None,
    report_to: ReportToOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
    ray_max_failures: RayMaxFailuresOpt = None,
) -> None:
    """Continue a failed or interrupted run with the same settings and data order."""
    settings = command_settings(output, json_output, runtime, gpus, report_to, workers, ray_address, ray_max_failures)
    out = Output(json_mode=settings.log_json)
    if RunHistory(output_dir(settings)).find(run).stage == "campaign":
        plan, folder = campaign_of(output_dir(settings), run)
        out.note(f"resuming campaign {plan.campaign_id}")
        report(out, run_campaign(plan, folder, settings, out), output_flag(settings))
        return
    run_and_report(out, plan_resume(output_dir(settings), run), settings)
