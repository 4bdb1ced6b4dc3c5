"""The runtime protocol: run a stage from its spec file, hand each event over, return how it ended."""

import importlib.util
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
    workers: int  # processes of a data-parallel stage (train); the history row keeps it

    @classmethod
    def from_settings(cls, settings, note) -> "Runtime":
        """Made from the settings (config.Settings) and a way to tell people what it does (either may be None):
        its own section of them, a data-parallel stage (train) run as ``settings.workers`` processes, and
        ``settings.stop_grace_s`` for a stage to stop after Ctrl-C, SIGTERM or SIGHUP before it is killed."""

    def check(self) -> None:
        """Raise a DEP_ error when this runtime cannot run stages here."""

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        """Run ``python -m backpropagate_stages.<stage> --spec spec_path`` to its end."""


def first_missing(packages: tuple[str, ...]) -> str | None:
    """The first of ``packages`` this Python cannot import, looked up without importing any (the host stays fast)."""
    return next((package for package in packages if importlib.util.find_spec(package) is None), None)
