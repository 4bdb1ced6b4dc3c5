"""events.jsonl gets the host's own events too, so the run's file tells its whole story.

A stage appends its events itself; this sink appends only those the host emitted (stage
``host``: a runtime or GPU fallback it chose), redacted like the stage's.
"""

import json

from backpropagate.contract.events import HOST, Envelope
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.redact import redact_data
from backpropagate.sinks.base import RunEnd, RunStart


class EventsFileSink:
    required = True
    name = "events file"

    def __init__(self) -> None:
        self.path = None

    def open(self, start: RunStart) -> None:
        self.path = RunFolder(start.run_dir).events

    def event(self, envelope: Envelope) -> None:
        if envelope.stage != HOST:
            return
        line = json.dumps(redact_data(envelope.to_dict()), ensure_ascii=False, separators=(",", ":"))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def close(self, end: RunEnd) -> None:
        pass
