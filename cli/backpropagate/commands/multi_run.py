"""`backprop multi-run`: several training runs, one after another, kept in one LoRA by SLAO merging.

Every run option of the settings declaration applies to each run (``--steps`` is the steps of each
run), as in `train`, and its campaign options (``--replay``) to the campaign; the parameters below
are the campaign's own and not settings.
"""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import FormatOpt, JsonOpt, SkipInvalidOpt, takes_run_options
from backpropagate.config import command_settings, output_dir, output_flag
from backpropagate.contract.campaign import campaign_matrix
from backpropagate.contract.merges import merge_help
from backpropagate.options import grouped_options, settings_from_arguments
from backpropagate.output import Output
from backpropagate.runs.campaign import CampaignResult, run_campaign
from backpropagate.runs.campaign_plan import campaign_of, plan_campaign

EXAMPLES = """
Examples:

  backprop multi-run --data my_data.jsonl --runs 5 --steps 100 --samples 1000 --model ./base

  backprop multi-run --data week1.jsonl --data week2.jsonl --eval-data week1_eval.jsonl --eval-data week2_eval.jsonl

  backprop multi-run --data my_data.jsonl --runs 3 --merge none   # sequential LoRA, the baseline

  backprop multi-run --data week1.jsonl --data week2.jsonl --data week3.jsonl --replay 0.2

  backprop multi-run --resume 7c1d   # or: backprop resume 7c1d
"""

@takes_run_options(campaign=True)
def multi_run(
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", readable=False, help="One dataset to split into --runs runs of --samples rows, or one per run "
                                             "(--data A.jsonl --data B.jsonl).")] = None,
    runs: Annotated[int | None, typer.Option(help="Runs in the campaign [default one per --data file, or 2].")] = None,
    samples: Annotated[int | None, typer.Option(help="Rows per run, drawn from the one --data file with --seed, "
                                                     "without replacement [default all rows, shared evenly].")] = None,
    merge: Annotated[str, typer.Option(help=merge_help() + " [default slao].")] = "slao",
    json_output: JsonOpt = None,
    data_format: FormatOpt = "auto",
    skip_invalid: SkipInvalidOpt = False,
    eval_data: Annotated[list[Path] | None, typer.Option(
        readable=False, help="Held-out rows of each run, once per run in order: after every run the merged adapter "
                             "is measured on those of that run and of every earlier one.",
        rich_help_panel="Evaluation")] = None,
    eval_prompts: Annotated[list[Path] | None, typer.Option(
        help="JSONL of {\"prompt\", \"expect\"} for each run, once per run in order, answered like --eval-data.",
        rich_help_panel="Evaluation")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue this unfinished campaign (id or prefix) with its "
                                                    "own settings and data.")] = None,
    **options,
) -> None:
    """Train several runs in sequence into one LoRA adapter, merged after each run (SLAO)."""
    out = Output(json_mode=bool(command_settings(options["output"], json_output).log_json))
    if resume:
        settings = command_settings(options["output"], json_output, options["runtime"], options["gpus"],
                                    workers=options["workers"], ray_address=options["ray_address"],
                                    ray_max_failures=options["ray_max_failures"])
        campaign_flags = {"--data": data, "--runs": runs, "--samples": samples, "--merge": merge != "slao" or None,
                          "--format": data_format != "auto" or None, "--skip-invalid": skip_invalid or None,
                          "--eval-data": eval_data, "--eval-prompts": eval_prompts}
        given = sorted([grouped_options()[name].flag for name, value in options.items()
                        if value is not None and name not in ("output", "runtime", "gpus", "workers", "ray_address",
                                                              "ray_max_failures")]
                       + [flag for flag, value in campaign_flags.items() if value])
        if given:
            out.warn(f"resuming uses the campaign's own settings and data; ignored: {', '.join(given)}")
        plan, folder = campaign_of(output_dir(settings), resume)
        out.note(f"resuming campaign {plan.campaign_id}")
    else:
        settings = settings_from_arguments(options, call="backprop multi-run", campaign=True, log_json=json_output)
        plan, folder, continued = plan_campaign(settings, data or [], runs, samples, merge, data_format, skip_invalid,
                                                eval_data or [], eval_prompts or [])
        out.note(f"{'continuing' if continued else 'starting'} campaign {plan.campaign_id}: {len(plan.runs)} runs, "
                 f"merge {plan.merge}")
        if continued:
            out.warn(f"continuing the unfinished campaign {plan.campaign_id} in {folder.root.parent}: same model, "
                     "data and settings (pass another --output to start a new one)")
        out.note(f"data: {plan.drawing}")
    report(out, run_campaign(plan, folder, settings, out), output_flag(settings))


def report(out: Output, result: CampaignResult, output: str = "") -> None:
    """The campaign's adapter, each run's final loss and evaluations, then the next command (``output``: the
    --output flag it needs, if any)."""
    lines = [f"campaign {result.campaign_id}: {len(result.runs)} runs", f"adapter: {result.adapter_path}"]
    for run in result.runs:
        weight = f"  lambda {run['merge_lambda']:.4f}" if run.get("merge_lambda") is not None else ""
        lines.append(f"  run {run['index']}  {run['run_id']}  final loss {run['final_loss']:.4f}{weight}")
    for figures in result.evals:
        shown = ", ".join(f"{k} {v}" for k, v in figures.items() if k not in ("after_run", "on_run"))
        lines.append(f"  after run {figures['after_run']}, on run {figures['on_run']}: {shown}")
    lines.append(f"next: backprop export {result.campaign_id[:8]}{output} --format gguf")
    out.result("\n".join(lines), {"campaign_id": result.campaign_id, "campaign_dir": str(result.campaign_dir),
                                  "adapter": str(result.adapter_path), "runs": result.runs, "evals": result.evals,
                                  "matrix": campaign_matrix(result.evals, len(result.runs))})
