"""`backprop train`: fine-tune a LoRA adapter on a dataset file."""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import (
    BatchSizeOpt,
    DeviceOpt,
    DoraOpt,
    FormatOpt,
    GpusOpt,
    GradientAccumulationOpt,
    JsonOpt,
    LoraDropoutOpt,
    LoraPresetOpt,
    LoraROpt,
    LoraTargetsOpt,
    MaxSeqLengthOpt,
    MemoryLimitOpt,
    ModelOpt,
    OutputOpt,
    QloraOpt,
    ReportToOpt,
    RuntimeOpt,
    SkipInvalidOpt,
    WorkersOpt,
)
from backpropagate.commands._run import run_and_report
from backpropagate.config import OVERRIDES, flag_name, output_dir, settings_from_arguments
from backpropagate.contract.errors import BackpropError
from backpropagate.output import Output
from backpropagate.runs.plan import plan_resume, plan_train

EXAMPLES = """
Examples:

  backprop train --data my.jsonl --model Qwen/Qwen2.5-7B-Instruct --steps 100

  backprop train --data my.jsonl --model qwen2.5-7b --steps 100   (a preset: QLoRA, `backprop presets`)

  backprop train --data examples/quickstart.jsonl --model models/tiny-llama --steps 30 --device cpu

  backprop train --data my.jsonl --model ./base --lora-preset fast --lora-r 8 --json

  backprop train --data my.jsonl --model ./base --eval-split 0.1 --eval-every 20 --eval-prompts prompts.jsonl

  MLFLOW_TRACKING_URI=sqlite:///mlflow.db backprop train --data my.jsonl --model ./base --report-to mlflow,tensorboard

  backprop train --data my.jsonl --model ./base --workers 2   (two GPUs, or two CPU processes)

  backprop train --resume 3f2a   (or: backprop resume 3f2a)
"""


def train(
    data: Annotated[Path | None, typer.Option("--data", "-d", readable=False, help="Dataset: JSONL or a JSON array "
                                              "(ShareGPT, OpenAI chat, Alpaca or raw text).")] = None,
    model: ModelOpt = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps [default 100].")] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    data_format: FormatOpt = "auto",
    skip_invalid: SkipInvalidOpt = False,
    batch_size: BatchSizeOpt = None,
    gradient_accumulation: GradientAccumulationOpt = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate [default 2e-4].")] = None,
    lr_scheduler: Annotated[str | None, typer.Option(help="cosine, linear or constant [default cosine].")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warmup steps [default 5].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay [default 0].")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(help="Gradient clipping norm [default 1.0].")] = None,
    max_seq_length: MaxSeqLengthOpt = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack several examples per row "
                                                                                 "[default on].")] = None,
    train_on_inputs: Annotated[bool | None, typer.Option("--train-on-inputs/--train-on-replies",
                                                         help="Also take loss on prompts [default: replies "
                                                              "only].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for adapter init and data order [default 42].")] = None,
    device: DeviceOpt = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints, 0 for none "
                                                              "[default 50].")] = None,
    keep_checkpoints: Annotated[int | None, typer.Option(help="Checkpoints kept [default 3].")] = None,
    unsloth: Annotated[str | None, typer.Option(help="auto (when installed, on a GPU, for a supported model), "
                                                     "on or off [default auto].")] = None,
    lora_preset: LoraPresetOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha [default 32].")] = None,
    lora_dropout: LoraDropoutOpt = None,
    lora_targets: LoraTargetsOpt = None,
    dora: DoraOpt = None,
    qlora: QloraOpt = None,
    memory_limit_gb: MemoryLimitOpt = None,
    oom_recovery: Annotated[bool | None, typer.Option("--oom-recovery/--no-oom-recovery",
                                                      help="On out-of-memory, halve the micro-batch and double "
                                                           "accumulation, up to 3 times [default on].")] = None,
    checkpoint_on_interrupt: Annotated[bool | None, typer.Option(
        "--checkpoint-on-interrupt/--no-checkpoint-on-interrupt",
        help="On Ctrl-C, save a checkpoint after the current step [default off].")] = None,
    thermal_pause_c: Annotated[float | None, typer.Option(help="Pause between steps at this GPU temperature "
                                                               "[default 85].")] = None,
    thermal_resume_c: Annotated[float | None, typer.Option(help="Go on below this temperature [default 75].")] = None,
    thermal_timeout_s: Annotated[float | None, typer.Option(help="Fail if still hot after this long "
                                                                 "[default 900].")] = None,
    thermal_poll_s: Annotated[float | None, typer.Option(help="Seconds between readings while paused "
                                                              "[default 5].")] = None,
    eval_data: Annotated[Path | None, typer.Option(readable=False, help="Held-out rows (any dataset format): their "
                                                   "loss before training, every --eval-every steps and at the end.")
                         ] = None,
    eval_split: Annotated[float | None, typer.Option(help="Hold out this fraction of --data instead (seeded) "
                                                          "[default 0: none].")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between held-out evaluations [default 0: before and "
                                                        "after only].")] = None,
    eval_prompts: Annotated[Path | None, typer.Option(help="JSONL of {\"prompt\", \"expect\"}: the base's and the "
                                                           "fine-tune's greedy answers side by side, with hits.")
                            ] = None,
    eval_max_tokens: Annotated[int | None, typer.Option(help="Length of those answers in tokens [default 48].")
                               ] = None,
    runtime: RuntimeOpt = None,
    gpus: GpusOpt = None,
    report_to: ReportToOpt = None,
    workers: WorkersOpt = None,
    resume: Annotated[str | None, typer.Option(help="Continue this failed or interrupted run (id or prefix) "
                                                    "from its newest valid checkpoint, with its own settings.")
                      ] = None,
) -> None:
    """Fine-tune a LoRA adapter on a dataset file."""
    flags = {name: value for name, value in locals().items() if name in OVERRIDES}  # every setting flag, by name
    settings = settings_from_arguments(flags, log_json=json_output)
    out = Output(json_mode=settings.log_json)
    if resume:
        given = sorted(flag_name(name) for name, value in flags.items()
                       if value is not None and name not in ("output", "runtime", "gpus", "report_to", "workers"))
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
