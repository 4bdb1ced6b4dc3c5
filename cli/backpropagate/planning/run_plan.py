"""`backprop plan`'s answer for a run: its peak memory, whether that fits, what to change, and its pace.

Built from settings alone (a model's config and the run's flags), before a weight is loaded;
`train` shows it before it starts and refuses a run that cannot fit.
"""

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from backpropagate.config import Settings
from backpropagate.contract.errors import BackpropError
from backpropagate.planning.device import Budget, budget, training_device
from backpropagate.planning.memory import MemoryPlan, RunShape, estimate
from backpropagate.planning.shape import ModelShape
from backpropagate.planning.source import model_config

THROUGHPUT = Path(__file__).with_name("throughput.toml")


@dataclass(frozen=True)
class RunPlan:
    model: str
    origin: str  # where the config came from
    shape: ModelShape
    run: RunShape
    accumulation: int
    memory: MemoryPlan
    budget: Budget
    change: str | None  # the flags that would make a run that does not fit fit
    tokens_per_s: float | None  # measured for this model and device, when known
    pace_source: str  # where that figure comes from, or why there is none
    steps: int = 0  # the run's optimizer steps, for the time it takes in all

    @property
    def fits(self) -> bool | None:
        return None if self.budget.limit is None else self.memory.peak <= self.budget.limit

    @property
    def seconds_per_step(self) -> float | None:
        if not self.tokens_per_s:
            return None
        return round(self.run.tokens * self.accumulation / self.tokens_per_s, 2)

    def to_dict(self) -> dict:
        return {"peak_memory_bytes": self.memory.peak, "breakdown_bytes": self.memory.parts(),
                "gradient_checkpointing": self.memory.gradient_checkpointing,
                "activations_other_way_bytes": self.memory.activations_other_way,
                "model": self.model, "config": self.origin, "parameters": self.shape.parameters(),
                "device": self.run.device, "qlora": self.run.qlora, "batch_size": self.run.batch_size,
                "max_seq_length": self.run.seq_len, "limit_bytes": self.budget.limit, "limit": self.budget.source,
                "fits": self.fits, "change": self.change, "seconds_per_step": self.seconds_per_step,
                "tokens_per_s": self.tokens_per_s, "pace": self.pace_source}

    def line(self) -> str:
        """One line for `train` to show before it starts."""
        verdict = ("fit not checked: " + self.budget.source if self.fits is None
                   else f"fits {self.budget.source}" if self.fits else f"does not fit {self.budget.source}")
        pace = f", about {self.seconds_per_step:g} s per step" if self.seconds_per_step else ""
        if self.seconds_per_step and self.steps:
            pace += f" ({duration(self.seconds_per_step * self.steps)} for {self.steps} steps)"
        return f"plan: peak memory about {gib(self.memory.peak)} on {self.run.device}{pace}; {verdict}"

    def text(self) -> str:
        m, run = self.memory, self.run
        method = "QLoRA (4-bit base)" if run.qlora else f"LoRA ({'fp32' if run.device == 'cpu' else 'bf16'} base)"
        other = "with" if not m.gradient_checkpointing else "without"
        rows = [
            f"model        {self.model} ({self.shape.parameters() / 1e9:.2f}B parameters; config: {self.origin})",
            f"run          {method} on {run.device}, rank {run.lora_r}, batch {run.batch_size} x "
            f"{run.seq_len} tokens",
            f"weights      {gib(m.weights)}",
            f"adapter      {gib(m.lora)}",
            f"gradients    {gib(m.gradients)}",
            f"optimizer    {gib(m.optimizer)}  (AdamW, two moments)",
            f"activations  {gib(m.activations)}  (gradient checkpointing "
            f"{'on' if m.gradient_checkpointing else 'off'}; {other} it: {gib(m.activations_other_way)})",
            f"loss chunk   {gib(m.loss_chunk)}  (logits of at most 512 positions at once)",
        ]
        if m.runtime:
            rows.append(f"runtime      {gib(m.runtime)}  (Python, torch, transformers, PEFT, the tokenizer)")
        if m.allocator_slack:
            rows.append(f"freed, kept  {gib(m.allocator_slack)}  (forward temporaries the C allocator keeps)")
        rows.append(f"peak         {gib(m.peak)}")
        if self.fits is None:
            rows.append(f"fits         not checked: {self.budget.source}")
        else:
            rows.append(f"fits         {'yes' if self.fits else 'no'}: {gib(self.budget.limit)} from "
                        f"{self.budget.source}")
        if self.change:
            rows.append(f"change       {self.change}")
        rows.append(f"pace         about {self.seconds_per_step:g} s per step ({self.pace_source})"
                    if self.seconds_per_step else f"pace         unknown: {self.pace_source}")
        return "\n".join(rows)


def duration(seconds: float) -> str:
    """A stretch of time as people say it: about 40 s, about 12 min, about 3.5 h."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def gib(size: int | float) -> str:
    return f"{size / 2**30:.2f} GiB"


def run_shape(settings: Settings, shape: ModelShape, model: str) -> RunShape:
    lora, training = settings.lora, settings.training
    unknown = [] if lora.targets == ("all-linear",) else sorted(set(lora.targets) - set(shape.linear_names()))
    if unknown:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--lora-targets", value=",".join(lora.targets),
                            reason=f"{model} has no linear layer named {', '.join(unknown)}",
                            allowed="all-linear or some of " + ", ".join(shape.linear_names()))
    return RunShape(batch_size=training.batch_size, seq_len=training.max_seq_length, lora_r=lora.r,
                    targets=lora.targets, qlora=lora.qlora, device=training_device(training.device),
                    dropout=lora.dropout > 0, dora=lora.dora)


def plan_run(settings: Settings) -> RunPlan:
    """The plan of training ``settings.model.name`` with ``settings``; no weight is read."""
    model = settings.model.name
    source = model_config(model)
    shape = ModelShape.from_config(source.config, model)
    run = run_shape(settings, shape, model)
    memory = estimate(shape, run)
    room = budget(run.device, settings.training.memory_limit_gb)
    change = None
    if room.limit is not None and memory.peak > room.limit:
        change = what_fits(shape, run, settings.training.gradient_accumulation, room.limit)
    tokens_per_s, pace = measured_pace(shape, run)
    return RunPlan(model=model, origin=source.origin, shape=shape, run=run,
                   accumulation=settings.training.gradient_accumulation, memory=memory, budget=room, change=change,
                   tokens_per_s=tokens_per_s, pace_source=pace, steps=settings.training.steps)


def what_fits(shape: ModelShape, run: RunShape, accumulation: int, limit: int) -> str:
    """The first change that brings the peak under ``limit``: a smaller micro-batch (same rows per step),
    then QLoRA on a GPU, then shorter rows."""
    batch = run.batch_size // 2
    while batch >= 1:
        if estimate(shape, replace(run, batch_size=batch)).peak <= limit:
            rows_per_step = run.batch_size * accumulation
            return f"--batch-size {batch} --gradient-accumulation {-(-rows_per_step // batch)}"
        batch //= 2
    if run.device == "cuda" and not run.qlora and estimate(shape, replace(run, qlora=True)).peak <= limit:
        return "--qlora"
    length = run.seq_len // 2
    while length >= 128:
        if estimate(shape, replace(run, seq_len=length)).peak <= limit:
            return f"--max-seq-length {length}"
        length //= 2
    return "a smaller model (`backprop presets` lists each preset's memory)"


def measured_pace(shape: ModelShape, run: RunShape) -> tuple[float | None, str]:
    """Tokens per second measured for this model shape on this kind of device (throughput.toml)."""
    key = shape_key(shape)
    for row in tomllib.loads(THROUGHPUT.read_text()).get("measured", []):
        if row["shape"] == key and row["device"] == run.device and row["qlora"] == run.qlora:
            return row["tokens_per_s"], row["source"]
    return None, f"no throughput measured for this model on {run.device}" + (" with QLoRA" if run.qlora else "")


def shape_key(shape: ModelShape) -> str:
    return f"{shape.model_type}-h{shape.hidden}-i{shape.intermediate}-l{shape.layers}-v{shape.vocab}"


def refuse_if_too_big(plan: RunPlan) -> None:
    """`train` refuses a run whose planned peak exceeds what the device has, naming the flag to change."""
    if plan.fits is False:
        raise BackpropError("CONFIG_PLAN_EXCEEDS_MEMORY", need=gib(plan.memory.peak), have=gib(plan.budget.limit),
                            source=plan.budget.source, change=plan.change)
