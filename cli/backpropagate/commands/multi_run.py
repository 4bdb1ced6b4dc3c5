"""`backprop multi-run`: several training runs, one after another, kept in one LoRA by SLAO merging.

Every training flag of `train` applies to each run (``--steps`` is the steps of each run); the
signature below is `train`'s own, with the campaign's flags in place of its single-run ones.
"""

import inspect
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands import train as train_command
from backpropagate.config import OVERRIDES, command_settings, flag_name, output_dir, settings_from_arguments
from backpropagate.output import Output
from backpropagate.runs.campaign import CampaignResult, run_campaign
from backpropagate.runs.campaign_plan import campaign_of, plan_campaign

EXAMPLES = """
Examples:

  backprop multi-run --data my_data.jsonl --runs 5 --steps 100 --samples 1000 --model ./base

  backprop multi-run --data week1.jsonl --data week2.jsonl --eval-data week1_eval.jsonl --eval-data week2_eval.jsonl

  backprop multi-run --data my_data.jsonl --runs 3 --merge none   (sequential LoRA, the baseline)

  backprop multi-run --resume 7c1d   (or: backprop resume 7c1d)
"""

CAMPAIGN_PARAMETERS = {
    "data": Annotated[list[Path] | None, typer.Option(
        "--data", "-d", readable=False, help="One dataset to split into --runs runs of --samples rows, or one per run "
                             "(--data A.jsonl --data B.jsonl).")],
    "runs": Annotated[int | None, typer.Option(help="Runs in the campaign [default: one per --data file, or 2].")],
    "samples": Annotated[int | None, typer.Option(help="Rows per run, drawn from the one --data file with --seed, "
                                                       "without replacement [default: all rows, shared evenly].")],
    "merge": Annotated[str, typer.Option(help="slao: orthogonal start and time-aware merge after every run; none: "
                                              "the same adapter trained on (sequential LoRA) [default slao].")],
    "steps": Annotated[int | None, typer.Option(help="Optimizer steps of each run [default 100].")],
    "eval_data": Annotated[list[Path] | None, typer.Option(
        readable=False, help="Held-out rows of each run, once per run in order: after every run the merged adapter "
                             "is measured on those of that run and of every earlier one.")],
    "eval_prompts": Annotated[list[Path] | None, typer.Option(
        help="JSONL of {\"prompt\", \"expect\"} for each run, once per run in order, answered like --eval-data.")],
    "resume": Annotated[str | None, typer.Option(help="Continue this unfinished campaign (id or prefix) with its "
                                                      "own settings and data.")],
}
DEFAULTS = {"data": None, "runs": None, "samples": None, "merge": "slao", "steps": None, "eval_data": None,
            "eval_prompts": None, "resume": None}
_SINGLE_RUN = {"data", "steps", "eval_data", "eval_prompts", "resume"}


def multi_run(**arguments) -> None:
    """Train several runs in sequence into one LoRA adapter, merged after each run (SLAO)."""
    flags = {name: value for name, value in arguments.items() if name in OVERRIDES}
    out = Output(json_mode=bool(command_settings(arguments["output"], arguments["json_output"]).log_json))
    if arguments["resume"]:
        settings = command_settings(arguments["output"], arguments["json_output"], arguments["runtime"],
                                    arguments["gpus"], workers=arguments["workers"])
        given = sorted(flag_name(name) for name, value in arguments.items()
                       if value not in (None, [], DEFAULTS.get(name), False, "auto")
                       and name not in ("output", "runtime", "gpus", "json_output", "resume", "workers"))
        if given:
            out.warn(f"resuming uses the campaign's own settings and data; ignored: {', '.join(given)}")
        plan, folder = campaign_of(output_dir(settings), arguments["resume"])
        out.note(f"campaign_resumed campaign_id={plan.campaign_id}")
    else:
        settings = settings_from_arguments(flags, call="backprop multi-run", log_json=arguments["json_output"])
        plan, folder, continued = plan_campaign(
            settings, arguments["data"] or [], arguments["runs"], arguments["samples"], arguments["merge"],
            arguments["data_format"], arguments["skip_invalid"], arguments["eval_data"] or [],
            arguments["eval_prompts"] or [])
        out.note(("campaign_continued" if continued else "campaign_started")
                 + f" campaign_id={plan.campaign_id} runs={len(plan.runs)} merge={plan.merge}")
        if continued:
            out.warn(f"continuing the unfinished campaign {plan.campaign_id} in {folder.root.parent}: same model, "
                     "data and settings (pass another --output to start a new one)")
        out.note(f"data: {plan.drawing}")
    report(out, run_campaign(plan, folder, settings, out))


def report(out: Output, result: CampaignResult) -> None:
    lines = [f"campaign {result.campaign_id}: {len(result.runs)} runs", f"adapter: {result.adapter_path}"]
    for run in result.runs:
        weight = f"  lambda {run['merge_lambda']:.4f}" if run.get("merge_lambda") is not None else ""
        lines.append(f"  run {run['index']}  {run['run_id']}  final loss {run['final_loss']:.4f}{weight}")
    for figures in result.evals:
        shown = ", ".join(f"{k} {v}" for k, v in figures.items() if k not in ("after_run", "on_run"))
        lines.append(f"  after run {figures['after_run']}, on run {figures['on_run']}: {shown}")
    out.result("\n".join(lines), {"campaign_id": result.campaign_id, "campaign_dir": str(result.campaign_dir),
                                  "adapter": str(result.adapter_path), "runs": result.runs, "evals": result.evals})


def _signature() -> inspect.Signature:
    """`train`'s parameters, with the campaign's in place of the single-run ones."""
    kept = [p for name, p in inspect.signature(train_command.train).parameters.items() if name not in _SINGLE_RUN]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=DEFAULTS[name])
             for name, annotation in CAMPAIGN_PARAMETERS.items()]
    return inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept] + added)


multi_run.__signature__ = _signature()
