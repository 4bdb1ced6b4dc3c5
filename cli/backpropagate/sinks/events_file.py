"""events.jsonl gets the host's own events too, so the run's file tells its whole story.

A stage appends its events itself; this sink appends only those the host emitted (stage
``host``: a runtime or GPU fallback it chose), redacted like the stage's.
"""

from backpropagate.contract.event_log import EventLog
from backpropagate.contract.events import HOST, Envelope
from backpropagate.contract.layout import RunFolder
from backpropagate.sinks.base import RunEnd, RunStart


class EventsFileSink:
    required = True
    name = "events file"

    def __init__(self) -> None:
        self.log: EventLog | None = None

    def open(self, start: RunStart) -> None:
        self.log = EventLog(RunFolder(start.run_dir).events)

    def event(self, envelope: Envelope) -> None:
        if envelope.stage == HOST:
            self.log.append(envelope)

    def close(self, end: RunEnd) -> None:
        self.log.close()
