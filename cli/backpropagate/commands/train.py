"""`backprop train`: fine-tune a LoRA adapter on a dataset file."""

from typing import Annotated

import typer

from backpropagate.commands._options import DataOpt, FormatOpt, JsonOpt, OutputOpt, SkipInvalidOpt
from backpropagate.config import OVERRIDES, flag_name, load_settings
from backpropagate.output import Output
from backpropagate.runs.execute import execute_train
from backpropagate.runs.plan import plan_train
from backpropagate.runtimes import get_runtime

EXAMPLES = """
Examples:

  backprop train --data my.jsonl --model Qwen/Qwen2.5-7B-Instruct --steps 100

  backprop train --data examples/quickstart.jsonl --model models/tiny-llama --steps 30 --device cpu

  backprop train --data my.jsonl --model ./base --lora-preset fast --lora-r 8 --json
"""


def train(
    data: DataOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model: hub id or local folder "
                                                                    "[env BACKPROPAGATE_MODEL__NAME].")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps [default 100].")] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    data_format: FormatOpt = "auto",
    skip_invalid: SkipInvalidOpt = False,
    batch_size: Annotated[int | None, typer.Option(help="Rows per micro-batch [default 2].")] = None,
    gradient_accumulation: Annotated[int | None, typer.Option(help="Micro-batches per step [default 4].")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate [default 2e-4].")] = None,
    lr_scheduler: Annotated[str | None, typer.Option(help="cosine, linear or constant [default cosine].")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warmup steps [default 5].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay [default 0].")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(help="Gradient clipping norm [default 1.0].")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="Tokens per row; longer examples are cut "
                                                            "[default 1024].")] = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack several examples per row "
                                                                                 "[default on].")] = None,
    train_on_inputs: Annotated[bool | None, typer.Option("--train-on-inputs/--train-on-replies",
                                                         help="Also take loss on prompts [default: replies "
                                                              "only].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for adapter init and data order [default 42].")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda; auto needs a GPU [default auto].")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints, 0 for none "
                                                              "[default 50].")] = None,
    keep_checkpoints: Annotated[int | None, typer.Option(help="Checkpoints kept [default 3].")] = None,
    unsloth: Annotated[str | None, typer.Option(help="auto (when installed, on a GPU, for a supported model), "
                                                     "on or off [default auto].")] = None,
    lora_preset: Annotated[str | None, typer.Option(help="quality (rank 256, all linear layers) or fast "
                                                         "(rank 16, q_proj,v_proj).")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank [default 16].")] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha [default 32].")] = None,
    lora_dropout: Annotated[float | None, typer.Option(help="LoRA dropout [default 0.05].")] = None,
    lora_targets: Annotated[str | None, typer.Option(help="Comma-separated module names, or all-linear "
                                                          "[default all-linear].")] = None,
    dora: Annotated[bool | None, typer.Option("--dora/--no-dora", help="Weight-decomposed LoRA (DoRA).")] = None,
    qlora: Annotated[bool | None, typer.Option("--qlora/--no-qlora", help="Load the base in 4 bits "
                                                                          "(bitsandbytes; CUDA only).")] = None,
) -> None:
    """Fine-tune a LoRA adapter on a dataset file."""
    arguments = locals()
    overrides = {key: arguments[name] for name, key in OVERRIDES.items() if name in arguments}
    overrides["log_json"] = json_output
    if output is not None:
        overrides["output"] = str(output)
    if lora_targets is not None:
        overrides["lora.targets"] = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    names = {key: flag_name(name) for name, key in OVERRIDES.items()}
    settings = load_settings(overrides=overrides, names=names)

    out = Output(json_mode=settings.log_json)
    plan = plan_train(settings, data, data_format, skip_invalid)
    out.note(f"run_started run_id={plan.spec.run_id}")
    out.note(f"dataset {plan.dataset.path.name}: {plan.dataset.format}, {len(plan.dataset.examples)} examples"
             + (f", {len(plan.dataset.dropped)} invalid rows skipped" if plan.dataset.dropped else ""))
    outcome = execute_train(plan, get_runtime("local"), out.event)
    result = outcome.outputs
    out.result(
        f"adapter: {result['adapter']}\nrun id: {outcome.run_id}\nloss: {result['losses'][0]:.4f} -> "
        f"{result['final_loss']:.4f} over {result['steps']} steps ({result['tokens_per_s']:,.0f} tokens/s)",
        {"run_id": outcome.run_id, "run_dir": outcome.run_dir, **result},
    )

