"""`backprop train`: fine-tune a LoRA adapter on a dataset file.

Its setting flags (--steps, --lora-r, ...) are the run options of the settings declaration, added by
``takes_run_options``; the parameters below are the ones that are not settings.
"""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import FormatOpt, JsonOpt, SkipInvalidOpt, takes_run_options
from backpropagate.commands._run import run_and_report
from backpropagate.config import output_dir
from backpropagate.options import run_options, settings_from_arguments
from backpropagate.contract.errors import BackpropError
from backpropagate.output import Output
from backpropagate.runs.plan import plan_resume, plan_train

EXAMPLES = """
Examples:

  backprop train --data my.jsonl --model Qwen/Qwen2.5-7B-Instruct --steps 100

  backprop train --data my.jsonl --model qwen2.5-7b --steps 100   # a preset: QLoRA, `backprop presets`

  backprop train --data examples/quickstart.jsonl --model models/tiny-llama --steps 30 --device cpu

  backprop train --data my.jsonl --model ./base --lora-preset fast --lora-r 8 --json

  backprop train --data my.jsonl --model ./base --eval-split 0.1 --eval-every 20 --eval-prompts prompts.jsonl

  MLFLOW_TRACKING_URI=sqlite:///mlflow.db backprop train --data my.jsonl --model ./base --report-to mlflow,tensorboard

  backprop train --data my.jsonl --model ./base --workers 2   # two GPUs, or two CPU processes

  backprop train --data my.jsonl --model ./base --runtime ray --ray-address HEAD:6379 --workers 4

  backprop train --resume 3f2a   # or: backprop resume 3f2a
"""


@takes_run_options
def train(
    data: Annotated[Path | None, typer.Option("--data", "-d", readable=False, help="Dataset: JSONL or a JSON array "
                                              "(ShareGPT, OpenAI chat, Alpaca or raw text).")] = None,
    json_output: JsonOpt = None,
    data_format: FormatOpt = "auto",
    skip_invalid: SkipInvalidOpt = False,
    eval_data: Annotated[Path | None, typer.Option(readable=False, help="Held-out rows (any dataset format): their "
                                                   "loss before training, every --eval-every steps and at the end.",
                                                   rich_help_panel="Evaluation")] = None,
    eval_prompts: Annotated[Path | None, typer.Option(help="JSONL of {\"prompt\", \"expect\"}: the base's and the "
                                                           "fine-tune's greedy answers side by side, with hits.",
                                                      rich_help_panel="Evaluation")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue this failed or interrupted run (id or prefix) "
                                                    "from its newest valid checkpoint, with its own settings.")
                      ] = None,
    **options,
) -> None:
    """Fine-tune a LoRA adapter on a dataset file."""
    settings = settings_from_arguments(options, log_json=json_output)
    out = Output(json_mode=settings.log_json)
    if resume:
        given = sorted(run_options()[name].flag for name, value in options.items()
                       if value is not None and name not in ("output", "runtime", "gpus", "report_to", "workers",
                                                             "ray_address", "ray_max_failures"))
        given += [flag for flag, value in (("--data", data), ("--eval-data", eval_data),
                                           ("--eval-prompts", eval_prompts)) if value is not None]
        if given:
            out.warn(f"resuming uses the run's own settings and data; ignored: {', '.join(given)}")
        run_and_report(out, plan_resume(output_dir(settings), resume), settings)
        return
    if data is None:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--data", value=None, reason="no dataset given",
                            allowed="a JSONL or JSON file (or --resume RUN to continue a run)")
    run_and_report(out, plan_train(settings, data, data_format, skip_invalid, eval_data, eval_prompts), settings)
