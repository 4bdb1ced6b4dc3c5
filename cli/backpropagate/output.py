"""One output object for every command: human (rich) or json, so commands never print.

Human mode draws progress on stderr and puts results on stdout; json mode passes
events through as JSON lines on stdout, for CI. With NO_COLOR or no terminal,
rich prints no colour. Text reaches the terminal redacted, with its control characters written
out, and as plain text: brackets in a path or a fix (``backpropagate[tensorboard]``) are never
read as rich markup.
"""

import json
import os
import sys
from typing import Any

from backpropagate.contract import events
from backpropagate.contract.events import Envelope
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.printable import one_line, printable
from backpropagate.contract.redact import redact, redact_data

_asked: dict[str, bool | None] = {"json": None}


def remember_json_flag(value: bool | None) -> bool | None:
    """The --json/--no-json callback: errors are printed after the command is gone, in the mode it asked for."""
    _asked["json"] = value
    return value


def json_asked() -> bool:
    """--json (or --no-json) as given, else BACKPROPAGATE_LOG_JSON."""
    if _asked["json"] is not None:
        return _asked["json"]
    return os.environ.get("BACKPROPAGATE_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on")


def shown(text: str) -> str:
    """What a person may be shown of ``text``: no secret, no control character."""
    return printable(redact(text))


def for_people(value: Any) -> str:
    """A recorded value as human output shows it: a float rounded to what a person reads (11.0704, 0.0002,
    2.5e-05), anything else as JSON writes it (null, true, "cosine"). JSON output keeps full precision."""
    if isinstance(value, float):
        return f"{round(value, 4):g}" if value == 0 or 1e-3 <= abs(value) < 1e7 else f"{value:.3g}"
    return json.dumps(value)


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns; each cell on one line, whatever a file name in it holds."""
    cells = [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


# A run's one-off figures, in words; any other key is shown as "key: value".
_METRIC_WORDS = {
    "examples": "{value} example{s} after tokenizing",
    "rows": "{value} training row{s} per pass over the data",
    "workers": "{value} training process{es}",
}


class Output:
    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self._progress = None
        self._task = None
        self._stderr = None

    def _console(self):
        if self._stderr is None:
            from rich.console import Console

            self._stderr = Console(stderr=True, highlight=False, emoji=False, markup=False)
        return self._stderr

    def event(self, envelope: Envelope) -> None:
        """Render one stage event."""
        if self.json_mode:
            print(envelope.to_line(), flush=True)
            return
        event = envelope.event
        if isinstance(event, events.Progress):
            self._advance(event)
        elif isinstance(event, events.Warning):
            self.warn(event.message)
        elif isinstance(event, events.Checkpoint):
            self.note(f"checkpoint step {event.step}: {event.path}")
        elif isinstance(event, events.Artifact):
            self.note(f"saved {event.kind} ({event.bytes:,} bytes, sha256 {event.sha256[:12]})")
        elif isinstance(event, events.Metric) and event.step is None:
            words = _METRIC_WORDS.get(event.key, event.key.replace("_", " ") + ": {value}")
            one = event.value == 1
            self.note(words.format(value=event.value, s="" if one else "s", es="" if one else "es"))
        elif isinstance(event, events.Finished):
            self.stop_progress()

    def note(self, text: str) -> None:
        """A line for people, on stderr; nothing in json mode."""
        if not self.json_mode:
            self._console().print(shown(text), soft_wrap=True)  # a log keeps a line whole; a terminal wraps it

    def warn(self, text: str) -> None:
        """A warning on stderr in both modes: stdout may be JSON, but a warning must not be lost."""
        text = shown(text)  # a path or a library's message may hold a token, or an escape
        if self.json_mode:
            print(f"warning: {text}", file=sys.stderr, flush=True)
        else:
            from rich.text import Text

            self._console().print(Text.assemble(("warning", "yellow"), " ", text), soft_wrap=True)

    def waiting(self, text: str) -> None:
        """A line while a network answer is awaited, on stderr in both modes: a wait is never silent."""
        if self.json_mode:
            print(redact(text), file=sys.stderr, flush=True)
        else:
            self._console().print(redact(text))

    def result(self, human: str, data: dict[str, Any]) -> None:
        """The command's result on stdout: text for people, one JSON object in json mode."""
        self.stop_progress()
        if self.json_mode:
            print(json.dumps({"result": redact_data(data)}, default=str), flush=True)
        else:
            print(shown(human), flush=True)

    def failure(self, error: BackpropError) -> None:
        """A command's coded failure: ``[CODE]: message`` and the fix on stderr; in json mode also one object on
        stdout, as the result line a success would have printed."""
        self.stop_progress()
        print(shown(error.render()), file=sys.stderr, flush=True)
        if self.json_mode:
            failure = {"code": error.code, "message": error.message, "fix": error.fix,
                       "run_id": error.run_id or error.context.get("run_id"), "exit_code": error.exit_code}
            print(json.dumps({"error": redact_data(failure)}, default=str), flush=True)

    def _advance(self, event: events.Progress) -> None:
        if not self._console().is_terminal:
            # A log file or CI gets one plain line per step: a live bar would only appear when it stops.
            self.note(f"train step {event.step}/{event.total}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                      f"{event.tokens_per_s:,.0f} tok/s")
            return
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                                                 "{task.fields[tps]:,.0f} tok/s"),
                                      TimeRemainingColumn(), console=self._console())
            self._progress.start()
            self._task = self._progress.add_task("train", total=event.total, loss=event.loss, lr=event.lr, tps=0)
        self._progress.update(self._task, completed=event.step, loss=event.loss, lr=event.lr,
                              tps=event.tokens_per_s)

    def stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
