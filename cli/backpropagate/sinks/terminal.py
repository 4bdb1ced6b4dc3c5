"""The terminal: events rendered for people (progress, warnings, artifacts) or passed through as JSON."""

from backpropagate.contract.events import Envelope
from backpropagate.output import Output
from backpropagate.sinks.base import RunEnd, RunStart


class TerminalSink:
    required = True
    name = "terminal"

    def __init__(self, out: Output, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet  # the Python API's progress=False

    def open(self, start: RunStart) -> None:
        pass

    def event(self, envelope: Envelope) -> None:
        if not self.quiet:
            self.out.event(envelope)

    def close(self, end: RunEnd) -> None:
        self.out.stop_progress()
