"""The local runtime: the stage program as a subprocess of this Python, on this machine.

The stage gets a pipe as its standard input that this process holds open and never writes: when the
host dies, however it dies, the stage sees the pipe end and goes too (backpropagate_stages/host_watch.py).
"""

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
from backpropagate.contract.stages import HOST_WATCH_VARIABLE
from backpropagate.runtimes.base import StageExit, first_missing
from backpropagate.runtimes.launch import Ending, stage_command, stage_environment
from backpropagate.runtimes.stopping import STOP_GRACE_S, Stopper

log = logging.getLogger("backpropagate.runtime")

# What the stages import; checked without importing (so the host stays fast and torch-free).
STACK = ("torch", "transformers", "peft", "safetensors", "sentencepiece")


class LocalRuntime:
    name = "local"
    answers = "the ML stack imports here"
    absent = "no local ML stack"

    @classmethod
    def from_settings(cls, settings=None, note=None) -> "LocalRuntime":
        # The same program as a subprocess: no Docker settings apply.
        return cls(workers=settings.workers, stop_grace_s=settings.stop_grace_s) if settings else cls()

    def __init__(self, stack: tuple[str, ...] = STACK, workers: int = 1, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.stack = stack
        self.workers = workers  # processes for a data-parallel stage (train), started by torchrun
        self.stop_grace_s = stop_grace_s

    def check(self) -> None:
        missing = first_missing(self.stack)
        if missing:
            raise BackpropError("DEP_LOCAL_STACK_MISSING", package=missing, reason=f"not installed for {sys.executable}")

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        self.check()
        command = [*stage_command(stage, self.workers, sys.executable), "--spec", str(spec_path)]
        # Its own session: a terminal's Ctrl-C reaches only this process, which forwards it
        # once, so the stage can finish its step instead of seeing two signals at once.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, encoding="utf-8", errors="replace", bufsize=1, start_new_session=True,
                                   env={**stage_environment(dict(os.environ)), "PYTHONUNBUFFERED": "1",
                                        HOST_WATCH_VARIABLE: "stdin"})
        stderr_tail: deque[str] = deque(maxlen=40)
        reader = threading.Thread(target=lambda: stderr_tail.extend(process.stderr), daemon=True)
        reader.start()
        stopper = Stopper(lambda name: _signal(process, name), self.stop_grace_s)
        ending = Ending(stage, self.workers)
        try:
            # A stop request goes to the stage, and reading goes on: the stage reports how it stopped
            # (checkpoint, error, finished).
            with stopper.listening():
                for line in process.stdout:
                    try:
                        envelope = parse_line(line)
                    except EventParseError as exc:
                        log.debug("stage printed a non-event line (%s): %s", exc, line.rstrip())
                        continue
                    if not ending.hold(envelope):
                        on_event(envelope)
                code = process.wait()
        finally:
            stopper.close()
            process.stdin.close()  # the stage's watch ends with it, if it is still there
        reader.join(timeout=5)
        for envelope in ending.settle("".join(stderr_tail), spec_path, stopped=stopper.requests > 0):
            on_event(envelope)
        stopper.end_if_overdue(stage, spec_path, on_event)
        return StageExit(code=code, stderr_tail="".join(stderr_tail))


def _signal(process: subprocess.Popen, name: str) -> None:
    """SIGINT to the stage; SIGKILL to its whole session (what it started, llama.cpp's converter, too)."""
    if process.poll() is not None:
        return
    try:
        if name == "SIGKILL" and hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(getattr(signal, name))
    except ProcessLookupError:  # it ended meanwhile
        pass
