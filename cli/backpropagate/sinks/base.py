"""The sink protocol, and what a sink is told when a run opens and when it closes."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from backpropagate.contract.events import Envelope
from backpropagate.contract.history import HistoryRow


@dataclass(frozen=True)
class RunStart:
    run_id: str
    run_dir: Path
    kind: str  # "train", "export" or "eval"
    runtime: str  # the runtime's name
    spec: Any = None  # the train spec (the run's resolved settings); None for an export
    resume: bool = False
    new_row: HistoryRow | None = None  # the history row a new run starts with; None when the row exists
    workers: int = 1  # processes of a data-parallel stage (train)


@dataclass(frozen=True)
class RunEnd:
    status: str  # completed, failed or interrupted
    error_code: str | None
    duration_s: float
    results: dict[str, Any] = field(default_factory=dict)  # stage name -> its typed result, for each that completed
    trackers: list[dict] = field(default_factory=list)  # the trackers that received the run (or dropped it)


class Sink(Protocol):
    # A required sink's failure stops the run (the history must not silently miss a run);
    # any other sink that fails is reported in a warning and dropped, and the run goes on.
    required: bool
    name: str

    def open(self, start: RunStart) -> None:
        """Before the first stage runs."""

    def event(self, envelope: Envelope) -> None:
        """Each event, in order."""

    def close(self, end: RunEnd) -> None:
        """After the last stage, however the run ended."""
