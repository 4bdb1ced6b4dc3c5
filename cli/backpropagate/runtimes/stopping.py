"""Stopping a stage when the host is asked to stop (Ctrl-C, SIGTERM, SIGHUP): ask twice, then kill.

The first request lets a training stage finish its step (and save a checkpoint when asked); the second
stops it now; a third, or a stage still running ``grace_s`` after the first (one stuck in a chat
template or a C call that never looks at its signals), is killed. Both runtimes stop their stage
through this, each with its own way to send a signal.
"""

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.events import HOST, Envelope

log = logging.getLogger("backpropagate.runtime")

# Long enough for a step of a large model on a slow GPU and its checkpoint; a stage that ignores the
# request is still ended, and a second Ctrl-C stops it at once.
STOP_GRACE_S = 300.0


class Stopper:
    def __init__(self, send: Callable[[str], None], grace_s: float) -> None:
        self.send = send  # delivers "SIGINT" or "SIGKILL" to the stage (and, for SIGKILL, what it started)
        self.grace_s = grace_s
        self.requests = 0
        self.overdue = False  # the stage was killed because it did not stop in time
        self._timer: threading.Timer | None = None

    def request(self) -> None:
        self.requests += 1
        self.send("SIGINT" if self.requests <= 2 else "SIGKILL")
        if self._timer is None:
            self._timer = threading.Timer(self.grace_s, self._kill_overdue)
            self._timer.daemon = True
            self._timer.start()

    def _kill_overdue(self) -> None:
        log.warning("the stage did not stop within %ss of the stop request: killing it", self.grace_s)
        self.overdue = True
        self.send("SIGKILL")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def end_if_overdue(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> None:
        """A stage killed for not stopping in time ended as the stop request meant it to: say so, and end the
        run as interrupted (``KeyboardInterrupt``, as Ctrl-C does), not as a stage that failed."""
        if not self.overdue:
            return
        run_id = str(json.loads(Path(spec_path).read_text(encoding="utf-8")).get("run_id", ""))
        on_event(Envelope(run_id=run_id, stage=HOST, event=events.Warning(code="stage_killed", message=(
            f"the {stage} stage did not stop within {self.grace_s:g} s of the stop request and was killed"))))
        raise KeyboardInterrupt
