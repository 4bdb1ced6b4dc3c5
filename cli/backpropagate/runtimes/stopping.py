"""Stopping a stage when the host is asked to stop (Ctrl-C, SIGTERM, SIGHUP): ask twice, then kill.

The first request lets a training stage finish its step (and save a checkpoint when asked); the second
stops it now; a third, or a stage still running ``grace_s`` after the first (one stuck in a chat
template or a C call that never looks at its signals), is killed. Both runtimes stop their stage
through this, each with its own way to send a signal.

While a stage runs, the stop signals are counted by a handler that only queues the request: a
``KeyboardInterrupt`` raised at an arbitrary point of the host would leave whatever it was doing half
done (a sink holding its lock, an HTTP stream to the engine cut mid-chunk), and the host hung on it.
A thread sends the stage its signal, so the handler never waits on anything.
"""

import json
import logging
import queue
import signal
import threading
from contextlib import contextmanager
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.events import HOST, Envelope

log = logging.getLogger("backpropagate.runtime")

# Long enough for a step of a large model on a slow GPU and its checkpoint; a stage that ignores the
# request is still ended, and a second Ctrl-C stops it at once.
STOP_GRACE_S = 300.0


# What a user, a service manager or a closed terminal sends to stop a command (app.py makes the last two
# act as Ctrl-C outside a stage).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopper:
    def __init__(self, send: Callable[[str], None], grace_s: float) -> None:
        self.send = send  # delivers "SIGINT" or "SIGKILL" to the stage (and, for SIGKILL, what it started)
        self.grace_s = grace_s
        self.requests = 0
        self.overdue = False  # the stage was killed because it did not stop in time
        self._timer: threading.Timer | None = None
        # SimpleQueue.put is reentrant: safe from a signal handler that interrupted anything.
        self._asked: queue.SimpleQueue = queue.SimpleQueue()

    @contextmanager
    def listening(self):
        """While the stage runs, a stop signal to this process is a stop request for the stage (not a
        ``KeyboardInterrupt``). Signals the caller ignores stay ignored; off the main thread (the web UI's
        jobs) Python cannot take signals, and nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
        sender = threading.Thread(target=self._send_requests, name="stage-stopper", daemon=True)
        sender.start()
        for number, handler in previous.items():
            if handler is not signal.SIG_IGN:
                signal.signal(number, lambda signum, frame: self._asked.put(True))
        try:
            yield
        finally:
            for number, handler in previous.items():
                if handler is not signal.SIG_IGN:
                    signal.signal(number, handler)
            self._asked.put(False)
            sender.join(timeout=5)

    def _send_requests(self) -> None:
        while self._asked.get():
            self.request()

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
