"""Options shared by several commands, so their names and help read the same everywhere."""

from pathlib import Path
from typing import Annotated

import typer

OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Workspace folder holding run folders and run_history.json "
                                        "[env BACKPROPAGATE_OUTPUT; default ./output]."),
]
JsonOpt = Annotated[
    bool | None,
    typer.Option("--json/--no-json", help="Machine-readable output: events and results as JSON lines on stdout "
                                          "[env BACKPROPAGATE_LOG_JSON]."),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option("--runtime", help="Where stages run: docker (the pinned stage images), local (this Python's ML "
                                   "stack), or auto: docker when an engine answers, else local "
                                   "[env BACKPROPAGATE_RUNTIME; default auto]."),
]
GpusOpt = Annotated[
    str | None,
    typer.Option("--gpus", help="GPUs for the train container: auto, all, none, a count, or device ids such as 0,1 "
                                "[env BACKPROPAGATE_DOCKER__GPUS; default auto]."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="Data-parallel training processes on this machine, started by torchrun (one per "
                                   "GPU asked for, or CPU processes); --batch-size x --gradient-accumulation stays "
                                   "the global batch, so the result does not change [env BACKPROPAGATE_WORKERS; "
                                   "default 1]."),
]
# readable=False: the dataset reader refuses an unreadable file itself, with a coded error and the chmod.
DataOpt = Annotated[Path, typer.Option("--data", "-d", readable=False,
                                       help="Dataset: JSONL or a JSON array (ShareGPT, OpenAI chat, Alpaca or "
                                            "raw text).")]
FormatOpt = Annotated[str, typer.Option("--format", help="Dataset format: auto, sharegpt, openai, alpaca or text.")]
SkipInvalidOpt = Annotated[bool, typer.Option("--skip-invalid", help="Drop invalid rows and report how many, "
                                                                     "instead of stopping at the first.")]
ReportToOpt = Annotated[
    str | None,
    typer.Option("--report-to", help="Experiment trackers that receive the run: auto (each one installed and "
                                     "configured), none, or names such as tensorboard,mlflow,wandb "
                                     "[env BACKPROPAGATE_REPORT_TO; default auto]."),
]
# The training flags `train` and `plan` share: what decides a run's memory.
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Base model: a preset (`backprop presets`), hub id "
                                                                   "or local folder [env BACKPROPAGATE_MODEL__NAME].")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Rows per micro-batch [default 2].")]
GradientAccumulationOpt = Annotated[int | None, typer.Option("--gradient-accumulation",
                                                             help="Micro-batches per step [default 4].")]
MaxSeqLengthOpt = Annotated[int | None, typer.Option("--max-seq-length", help="Tokens per row; longer examples are "
                                                                              "cut [default 1024].")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda; auto needs a GPU "
                                                                "[default auto].")]
LoraPresetOpt = Annotated[str | None, typer.Option("--lora-preset", help="quality (rank 256, all linear layers) or "
                                                                         "fast (rank 16, q_proj,v_proj).")]
LoraROpt = Annotated[int | None, typer.Option("--lora-r", help="LoRA rank [default 16].")]
LoraDropoutOpt = Annotated[float | None, typer.Option("--lora-dropout", help="LoRA dropout [default 0.05].")]
LoraTargetsOpt = Annotated[str | None, typer.Option("--lora-targets", help="Comma-separated module names, or "
                                                                           "all-linear [default all-linear].")]
DoraOpt = Annotated[bool | None, typer.Option("--dora/--no-dora", help="Weight-decomposed LoRA (DoRA).")]
QloraOpt = Annotated[bool | None, typer.Option("--qlora/--no-qlora", help="Load the base in 4 bits (bitsandbytes; "
                                                                          "CUDA only) [default: the preset's method, "
                                                                          "else off].")]
MemoryLimitOpt = Annotated[float | None, typer.Option("--memory-limit-gb", help="Refuse a run whose planned peak "
                                                      "memory exceeds this many GiB [default 0: the GPU's memory, or "
                                                      "the RAM available for a CPU run].")]
