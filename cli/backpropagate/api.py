"""The Python API: the same runs as the CLI, in three lines.

    from backpropagate import Trainer
    trainer = Trainer("Qwen/Qwen2.5-7B-Instruct")
    result = trainer.train("my.jsonl", steps=100)

Keyword arguments are the CLI's flags with underscores (``lora_r=8``,
``device="cpu"``); they override BACKPROPAGATE_* environment variables, which
override the defaults. Failures raise ``BackpropError`` with the same code the CLI
would print.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backpropagate.config import OVERRIDES, load_settings, output_dir
from backpropagate.contract.specs import QUANTIZATIONS
from backpropagate.output import Output
from backpropagate.runs.execute import execute_train
from backpropagate.runs.export import execute_export, plan_export
from backpropagate.runs.plan import plan_resume, plan_train
from backpropagate.runtimes import get_runtime


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    adapter_path: Path
    final_loss: float
    loss_history: list[float] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # everything the stage reported


@dataclass(frozen=True)
class ExportResult:
    run_id: str
    format: str
    path: Path
    outputs: dict[str, Any] = field(default_factory=dict)


class Trainer:
    def __init__(self, model: str | None = None, *, progress: bool = True, **settings: Any) -> None:
        _check_names(settings)
        self.model = model
        self.settings = settings
        self.progress = progress
        self.last_result: TrainResult | None = None

    def train(self, data: str | Path | None = None, steps: int | None = None, *, data_format: str = "auto",
              skip_invalid: bool = False, resume: str | None = None, **overrides: Any) -> TrainResult:
        """Train an adapter on ``data``; returns where it is and how the loss went.

        ``resume=RUN`` continues that failed or interrupted run from its newest valid checkpoint
        with its own settings (``data`` and other arguments are then not used).
        """
        _check_names(overrides)
        arguments = {**self.settings, **overrides, "model": self.model, "steps": steps}
        values = {OVERRIDES[name]: value for name, value in arguments.items()}
        if isinstance(values.get("lora.targets"), str):
            values["lora.targets"] = tuple(t.strip() for t in values["lora.targets"].split(","))
        if values.get("output") is not None:
            values["output"] = str(values["output"])
        settings = load_settings(overrides=values)
        if resume is not None:
            plan = plan_resume(output_dir(settings), resume)
        elif data is None:
            raise TypeError("train() needs data (a dataset file) or resume=RUN")
        else:
            plan = plan_train(settings, data, data_format, skip_invalid)
        out = Output(json_mode=False)
        runtime = get_runtime(settings.runtime, settings.docker, note=out.note if self.progress else None)
        outcome = execute_train(plan, runtime, out.event if self.progress else lambda envelope: None)
        outputs = outcome.outputs
        self.last_result = TrainResult(run_id=outcome.run_id, run_dir=Path(outcome.run_dir),
                                       adapter_path=Path(outputs["adapter"]), final_loss=outputs["final_loss"],
                                       loss_history=list(outputs["losses"]), outputs=outputs)
        return self.last_result

    def export(self, format: str = "merged", *, quantization: str = "q4_k_m", verify: bool = True,
               dtype: str = "float16", run: str | None = None, output: str | Path | None = None) -> ExportResult:
        """Export the last trained run (or ``run``): ``"merged"`` folds the adapter into the base model;
        ``"gguf"`` also converts and quantizes it with llama.cpp and verifies it against the merged model."""
        if format not in ("merged", "gguf"):
            raise ValueError(f"export format {format!r} is not built; choose 'merged' or 'gguf'")
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
        target = run or (self.last_result.run_id if self.last_result else None)
        if target is None:
            raise TypeError("export() needs a trained run: call train() first or pass run=RUN")
        output = output or self.settings.get("output")
        settings = load_settings(overrides={"output": str(output) if output else None,
                                            "runtime": self.settings.get("runtime"),
                                            "docker.gpus": self.settings.get("gpus")})
        plan = plan_export(output_dir(settings), target, dtype, format, quantization, verify)
        out = Output(json_mode=False)
        runtime = get_runtime(settings.runtime, settings.docker, note=out.note if self.progress else None)
        outputs = execute_export(plan, runtime, out.event if self.progress else lambda envelope: None)
        return ExportResult(run_id=plan.spec.run_id, format=format, path=Path(outputs.get("gguf") or outputs["merged"]),
                            outputs=outputs)


def _check_names(arguments: dict[str, Any]) -> None:
    unknown = sorted(set(arguments) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; accepted: {', '.join(sorted(OVERRIDES))}")
