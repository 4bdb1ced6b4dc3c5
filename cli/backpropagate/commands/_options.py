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
