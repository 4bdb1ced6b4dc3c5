"""The local runtime: the stage program as a subprocess of this Python, on this machine."""

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope, EventParseError, parse_line
from backpropagate.runtimes.base import StageExit
from backpropagate.runtimes.launch import stage_command, stage_environment

log = logging.getLogger("backpropagate.runtime")

# What the stages import; checked without importing (so the host stays fast and torch-free).
STACK = ("torch", "transformers", "peft", "safetensors", "sentencepiece")


class LocalRuntime:
    name = "local"
    answers = "the ML stack imports here"
    absent = "no local ML stack"

    @classmethod
    def from_settings(cls, settings=None, note=None, workers: int = 1) -> "LocalRuntime":
        return cls(workers=workers)  # the same program as a subprocess: no Docker settings apply

    def __init__(self, stack: tuple[str, ...] = STACK, workers: int = 1) -> None:
        self.stack = stack
        self.workers = workers  # processes for a data-parallel stage (train), started by torchrun

    def check(self) -> None:
        for package in self.stack:
            if importlib.util.find_spec(package) is None:
                raise BackpropError("DEP_LOCAL_STACK_MISSING", package=package,
                                    reason=f"not installed for {sys.executable}")

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        self.check()
        command = [*stage_command(stage, self.workers, sys.executable), "--spec", str(spec_path)]
        # Its own session: a terminal's Ctrl-C reaches only this process, which forwards it
        # once, so the stage can finish its step instead of seeing two signals at once.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   encoding="utf-8", errors="replace", bufsize=1, start_new_session=True,
                                   env={**stage_environment(dict(os.environ)), "PYTHONUNBUFFERED": "1"})
        stderr_tail: deque[str] = deque(maxlen=40)
        reader = threading.Thread(target=lambda: stderr_tail.extend(process.stderr), daemon=True)
        reader.start()
        interrupts = 0
        while True:
            try:
                for line in process.stdout:
                    try:
                        on_event(parse_line(line))
                    except EventParseError as exc:
                        log.debug("stage printed a non-event line (%s): %s", exc, line.rstrip())
                break
            except KeyboardInterrupt:
                # Keep reading: the stage reports how it stopped (checkpoint, error, finished).
                interrupts += 1
                _interrupt(process, interrupts)
        code = process.wait()
        reader.join(timeout=5)
        return StageExit(code=code, stderr_tail="".join(stderr_tail))


def _interrupt(process: subprocess.Popen, count: int) -> None:
    """First Ctrl-C: the stage finishes its step and stops; second: it stops now; third: kill."""
    if process.poll() is not None:
        return
    if count <= 2:
        process.send_signal(signal.SIGINT)
    else:
        os.killpg(process.pid, signal.SIGKILL)  # its session: torchrun's workers go with it
