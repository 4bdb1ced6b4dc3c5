"""Waiting for a network answer out loud: a blocking call, with a line every few seconds until it returns.

The call itself is bounded by its client's timeout; this only makes sure that the wait is never silent.
"""

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def line_every_s(timeout_s: float) -> float:
    """How often to say that an answer is awaited: every 10 s at long bounds, more often under short ones."""
    return max(1.0, min(10.0, timeout_s / 4))


def waited(call: Callable[[], T], on_wait: Callable[[float], None] | None, every_s: float) -> T:
    """``call()``; while it has not returned, ``on_wait(seconds so far)`` every ``every_s`` seconds.

    The call runs in a daemon thread so that the caller's thread stays free to speak (and to take Ctrl-C);
    what it returns or raises is handed back as it is.
    """
    if on_wait is None:
        return call()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(every_s)
    while worker.is_alive():
        on_wait(time.monotonic() - started)
        worker.join(every_s)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
