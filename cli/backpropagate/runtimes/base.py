"""The runtime protocol: run a stage from its spec file, hand each event over, return how it ended."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backpropagate.contract.events import Envelope


@dataclass(frozen=True)
class StageExit:
    code: int
    stderr_tail: str  # what the stage printed before its log capture started (import errors, crashes)


class Runtime(Protocol):
    name: str  # its key in registry.py
    answers: str  # why `--runtime auto` takes it ("a Docker engine answers")
    absent: str  # why `auto` passes it over ("no Docker engine")

    @classmethod
    def from_settings(cls, docker, note, workers: int = 1, stop_grace_s: float = 300.0) -> "Runtime":
        """Made from the Docker settings and a way to tell people what it does (either may be None), running a
        data-parallel stage (train) as ``workers`` processes, and giving a stage ``stop_grace_s`` to stop after
        Ctrl-C, SIGTERM or SIGHUP before it is killed."""

    def check(self) -> None:
        """Raise a DEP_ error when this runtime cannot run stages here."""

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        """Run ``python -m backpropagate_stages.<stage> --spec spec_path`` to its end."""
