"""The stage registry: every stage program, as data.

For each stage: the program (``python -m backpropagate_stages.<name>``), its spec and
result types, the file its spec is written to in the run folder, the image it runs in
under the docker runtime, and what it needs from a runtime. Runtimes read a stage's
needs from here, never its spec's fields; the harness reads the spec type from here.

Adding a stage: its program under ``stages/backpropagate_stages/<name>/``, its spec and
result types in ``specs.py``, and one entry below.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.specs import (
    EvalResult,
    EvalSpec,
    GgufResult,
    GgufSpec,
    MergeResult,
    MergeSpec,
    TrainResult,
    TrainSpec,
)


# Set by a runtime that gives the stage a standard input it keeps open while it lives: the stage
# ends with its host (stages/backpropagate_stages/host_watch.py).
HOST_WATCH_VARIABLE = "BACKPROP_HOST_WATCH"
# The host's warning when a runtime restarted a data-parallel stage's lost workers (Ray); the history keeps each.
WORKERS_RESTARTED = "workers_restarted"


@dataclass(frozen=True)
class Needs:
    gpu: bool = False  # may use a GPU (the runtime gives one when it can, see runtimes/gpus.py)
    network: bool = False  # downloads from the model hub; stages without it run with no network


@dataclass(frozen=True)
class Stage:
    name: str
    spec: type
    result: type
    spec_file: str  # in the run folder
    image: str  # the folder under images/ and the image repository's last part
    needs: Callable[[Any], Needs]  # from the stage's spec
    data_parallel: bool = False  # runs as N workers under torchrun when asked (--workers)


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    # A CPU run asks for no GPU; `auto` and `cuda` may use one. The base model may come from the hub.
    Stage("train", TrainSpec, TrainResult, "spec.json", "train",
          needs=lambda spec: Needs(gpu=spec.training.device != "cpu", network=True), data_parallel=True),
    # The base was fetched by the train stage: merge and convert read the cache, offline.
    Stage("merge", MergeSpec, MergeResult, "merge.spec.json", "merge", needs=lambda spec: Needs()),
    Stage("gguf", GgufSpec, GgufResult, "gguf.spec.json", "gguf-convert", needs=lambda spec: Needs()),
    # The quality report after the fact: the train image (the base, the adapter, generation).
    Stage("eval", EvalSpec, EvalResult, "eval.spec.json", "train",
          needs=lambda spec: Needs(gpu=spec.training.device != "cpu", network=True)),
)}


def stage_named(name: str) -> Stage:
    if name not in STAGES:
        raise BackpropError("CONFIG_VALUE_INVALID", name="stage", value=name, reason="not a stage",
                            allowed="one of " + ", ".join(STAGES))
    return STAGES[name]
