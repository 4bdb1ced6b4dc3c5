"""A run's events.jsonl as server-sent events, each line's number its event id; and its log.txt, each
whole line an event whose id is the byte offset after it.

The events are read back typed, through the contract's reader, as every other consumer reads
them; each goes to the browser as ``Envelope.to_line`` writes it. A client that reconnects (the
browser does so by itself, sending Last-Event-ID) or a page reloaded with ``?after=N`` gets the
lines after N only, so the chart goes on where it was.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from backpropagate.contract import events
from backpropagate.contract.event_log import read_events
from backpropagate.contract.events import Envelope
from backpropagate.contract.redact import redact

POLL_S = 0.25
LOG_TAIL = 200  # lines of log.txt a run page starts with
MAX_LOG_READ = 256 * 1024  # bytes of log.txt read at once
STOPPED = "RUNTIME_INTERRUPTED"  # the code of a run stopped on request: shown as stopped, not as a failure
EVAL_LOSS = "eval_loss"  # the metric key the train stage gives the held-out loss


def progress_points(found: list[tuple[int, Envelope]]) -> list[dict[str, Any]]:
    """The training curve so far: step, total, loss and learning rate of each train progress event."""
    return [{"step": e.event.step, "total": e.event.total, "loss": e.event.loss, "lr": e.event.lr} for _, e in found
            if isinstance(e.event, events.Progress) and e.stage == "train"]


def eval_points(found: list[tuple[int, Envelope]]) -> list[dict[str, Any]]:
    """The held-out loss by step, from the train stage's ``eval_loss`` metric events."""
    return [{"step": e.event.step, "loss": e.event.value} for _, e in found
            if isinstance(e.event, events.Metric) and e.stage == "train" and e.event.key == EVAL_LOSS
            and e.event.step is not None and isinstance(e.event.value, (int, float))]


def sse(number: int, envelope: Envelope) -> str:
    return f"id: {number}\nevent: run\ndata: {envelope.to_line()}\n\n"


def event_messages(path: Path) -> Callable[[int], list[tuple[int, str]]]:
    """The events after line N of events.jsonl, each as a ``run`` message whose id is its line number."""
    return lambda after: [(number, sse(number, envelope)) for number, envelope in read_events(path, after)]


def log_messages(path: Path) -> Callable[[int], list[tuple[int, str]]]:
    """The whole lines of log.txt after byte N, each as a ``log`` message whose id is the byte after it."""
    def read(after: int) -> list[tuple[int, str]]:
        return [(end, f"id: {end}\nevent: log\ndata: {json.dumps(line)}\n\n") for end, line in log_lines(path, after)]
    return read


def log_lines(path: Path, after: int) -> list[tuple[int, str]]:
    """(byte offset after the line, the line) for each whole line from byte ``after``; a line still being
    written waits for its newline. Redacted again here: the stage redacts what it writes, and this is a page."""
    try:
        with path.open("rb") as log:
            log.seek(after)
            data = log.read(MAX_LOG_READ)
    except OSError:
        return []
    lines, position = [], after
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        position += len(raw)
        lines.append((position, redact(raw.decode("utf-8", "replace").rstrip("\r\n"))))
    return lines


def log_tail(path: Path, count: int = LOG_TAIL) -> tuple[list[str], int]:
    """The last ``count`` whole lines of log.txt and the byte offset after them, for the page to start from."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], 0
    start = max(0, size - MAX_LOG_READ)
    found = log_lines(path, start)
    if start and found:
        found = found[1:]  # the first line read may be cut at its start
    return [line for _, line in found[-count:]], (found[-1][0] if found else start)


async def follow(read_after: Callable[[int], list[tuple[int, str]]], after: int, is_over: Callable[[], bool],
                 disconnected: Callable[[], Any]) -> AsyncIterator[str]:
    """Every message after ``after``, as it is written; an ``end`` message once the run is over."""
    yield "retry: 1000\n\n"
    last = after
    while True:
        over = is_over()  # read before the file, so nothing written just before the end is missed
        for number, message in read_after(last):
            last = number
            yield message
        if over:
            yield f"id: {last}\nevent: end\ndata: {{}}\n\n"
            return
        if await disconnected():
            return
        await asyncio.sleep(POLL_S)
