"""A run's events.jsonl as server-sent events: each line's number is its event id.

A client that reconnects (the browser does so by itself, sending Last-Event-ID) or a page
reloaded with ``?after=N`` gets the lines after N only, so the chart goes on where it was.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

POLL_S = 0.25


def read_events(path: Path, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """(line number, event) for each complete line after line ``after``."""
    if not path.exists():
        return []
    found = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if number <= after or not line.endswith("\n"):
                continue
            try:
                found.append((number, json.loads(line)))
            except json.JSONDecodeError:
                continue
    return found


def progress_points(events: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"step": e["step"], "total": e["total"], "loss": e["loss"]} for _, e in events
            if e.get("event") == "progress" and e.get("stage") == "train"]


def sse(number: int, event: dict[str, Any]) -> str:
    return f"id: {number}\nevent: run\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def follow(path: Path, after: int, is_over: Callable[[], bool],
                 disconnected: Callable[[], Any]) -> AsyncIterator[str]:
    """Every event after line ``after``, as it is written; an ``end`` event once the run is over."""
    yield "retry: 1000\n\n"
    last = after
    while True:
        over = is_over()  # read before the file, so no line written just before the end is missed
        for number, event in read_events(path, last):
            last = number
            yield sse(number, event)
        if over:
            yield f"id: {last}\nevent: end\ndata: {{}}\n\n"
            return
        if await disconnected():
            return
        await asyncio.sleep(POLL_S)
