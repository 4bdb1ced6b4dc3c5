"""What every experiment tracker is told, read off the same events: one translation, three trackers.

A tracker names its run by the run id, records the resolved spec (redacted) as its config, logs
each step's loss, learning rate, tokens/s and gradient norm, the numeric metrics (held-out loss
first), every artifact by path and sha256, and how the run ended.
"""

from typing import Any

from backpropagate.contract import events
from backpropagate.contract.events import Envelope
from backpropagate.contract.redact import redact_data
from backpropagate.contract.schema import to_dict
from backpropagate.sinks.base import RunEnd, RunStart

# How a tracker says a run ended, from the run's own status.
FINAL_STATUS = {"completed": "finished", "failed": "failed", "interrupted": "interrupted"}

_PROGRESS_KEYS = {"loss": "train/loss", "lr": "train/learning_rate", "tokens_per_s": "train/tokens_per_s",
                  "grad_norm": "train/grad_norm"}


def run_config(start: RunStart) -> dict[str, Any]:
    """The run's resolved settings as trackers record them: the spec, redacted. ``resume`` is left out:
    it is how this process started the run, not what the run is (MLflow refuses a changed parameter)."""
    spec = to_dict(start.spec) if start.spec is not None else {}
    spec.pop("resume", None)
    return redact_data({"run_id": start.run_id, **spec})


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``training.learning_rate``), for trackers whose parameters are flat."""
    items: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            items |= flat(value, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = value
    return items


class StepCounter:
    """The step a metric belongs to: its own, else the last training step seen (0 before the first)."""

    def __init__(self) -> None:
        self.step = 0

    def scalars(self, envelope: Envelope) -> tuple[int, dict[str, float]]:
        """The numbers one event carries, as tracker keys, and their step; empty for other events."""
        event = envelope.event
        if isinstance(event, events.Progress):
            self.step = event.step
            values = {key: getattr(event, name) for name, key in _PROGRESS_KEYS.items()}
            return event.step, {key: float(value) for key, value in values.items() if value is not None}
        if isinstance(event, events.Metric) and isinstance(event.value, (int, float)) \
                and not isinstance(event.value, bool):
            key = f"eval/{event.key.removeprefix('eval_')}" if event.key.startswith("eval_") \
                else f"{envelope.stage}/{event.key}"
            return (event.step if event.step is not None else self.step), {key: float(event.value)}
        return self.step, {}


def artifact(envelope: Envelope) -> events.Artifact | None:
    return envelope.event if isinstance(envelope.event, events.Artifact) else None


def final_status(end: RunEnd) -> str:
    return FINAL_STATUS.get(end.status, end.status)
