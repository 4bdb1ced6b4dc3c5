"""A run's events.jsonl as server-sent events: each line's number is its event id.

The events are read back typed, through the contract's reader, as every other consumer reads
them; each goes to the browser as ``Envelope.to_line`` writes it. A client that reconnects (the
browser does so by itself, sending Last-Event-ID) or a page reloaded with ``?after=N`` gets the
lines after N only, so the chart goes on where it was.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from backpropagate.contract import events
from backpropagate.contract.event_log import read_events
from backpropagate.contract.events import Envelope

POLL_S = 0.25
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


async def follow(path: Path, after: int, is_over: Callable[[], bool],
                 disconnected: Callable[[], Any]) -> AsyncIterator[str]:
    """Every event after line ``after``, as it is written; an ``end`` event once the run is over."""
    yield "retry: 1000\n\n"
    last = after
    while True:
        over = is_over()  # read before the file, so no line written just before the end is missed
        for number, envelope in read_events(path, last):
            last = number
            yield sse(number, envelope)
        if over:
            yield f"id: {last}\nevent: end\ndata: {{}}\n\n"
            return
        if await disconnected():
            return
        await asyncio.sleep(POLL_S)
