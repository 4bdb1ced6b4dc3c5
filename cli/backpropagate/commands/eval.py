"""`backprop eval`: the quality report of a trained run, after the fact."""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import GpusOpt, JsonOpt, OutputOpt, RuntimeOpt
from backpropagate.commands._quality import quality_lines
from backpropagate.config import command_settings, output_dir
from backpropagate.contract.quality import read_report
from backpropagate.output import Output
from backpropagate.runs.evaluate import plan_eval
from backpropagate.runs.session import Session

EXAMPLES = """
Examples:

  backprop eval 3f2a --eval-prompts prompts.jsonl

  backprop eval 3f2a --eval-data held_out.jsonl --json
"""


def eval_run(
    run: Annotated[str, typer.Argument(help="Run id, or any unique prefix of it.")],
    eval_data: Annotated[Path | None, typer.Option(help="Held-out rows [default the run's own, if it had "
                                                        "--eval-data or --eval-split].")] = None,
    eval_prompts: Annotated[Path | None, typer.Option(help="JSONL of {\"prompt\", \"expect\"} [default the "
                                                           "run's own --eval-prompts].")] = None,
    eval_max_tokens: Annotated[int | None, typer.Option(min=1, help="Answer length in tokens [default the "
                                                                    "run's].")] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
    gpus: GpusOpt = None,
) -> None:
    """Measure a trained run: held-out loss of the base and the fine-tune, and their answers side by side."""
    settings = command_settings(output, json_output, runtime, gpus)
    out = Output(json_mode=settings.log_json)
    plan = plan_eval(output_dir(settings), run, eval_data, eval_prompts, eval_max_tokens)
    result = Session.for_settings(settings, out).run(plan.pipeline())["eval"]
    report = read_report(plan.folder.quality)
    out.result("\n".join([f"run {plan.spec.run_id}", *quality_lines(report)]),
               {"run_id": plan.spec.run_id, "quality": result.quality})
