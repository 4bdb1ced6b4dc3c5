"""Every experiment tracker `--report-to` may name: a new tracker is its sink module and one line here.

An entry names the library the tracker needs (looked for without importing it) and its sink
class as ``module:Class``; the class says, in ``configured(environ)``, whether `auto` may turn it on.
"""

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Tracker:
    name: str
    module: str  # the library it needs
    sink: str  # module:Class of its sink

    def sink_class(self) -> type:
        module, _, cls = self.sink.partition(":")
        return getattr(import_module(module), cls)


TRACKERS: dict[str, Tracker] = {
    "tensorboard": Tracker("tensorboard", "tensorboardX", "backpropagate.sinks.tensorboard:TensorBoardSink"),
    "mlflow": Tracker("mlflow", "mlflow", "backpropagate.sinks.mlflow:MlflowSink"),
    "wandb": Tracker("wandb", "wandb", "backpropagate.sinks.wandb:WandbSink"),
}
TRACKER_NAMES = tuple(TRACKERS)
