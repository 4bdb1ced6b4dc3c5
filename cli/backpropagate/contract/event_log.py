"""A run's events.jsonl: the one writer of it and the one reader of it.

The stage appends its own events and the host appends those it emits itself, both through
``EventLog``, each line serialized (and redacted) by ``Envelope.to_line``. Readers (show-run,
the web UI) get typed events back through ``read_events``; a line that is cut off (still being
written) or not an event of this schema is skipped, not guessed at.
"""

from pathlib import Path

from backpropagate.contract.events import Envelope, EventParseError, parse_line


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = None
        self._failed = False  # after a failed write (a full disk) the log takes no more lines

    def append(self, envelope: Envelope) -> None:
        """One line per event, flushed at once: a reader following the file sees it as it happens."""
        if self._failed:
            return
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        try:
            self._file.write(envelope.to_line() + "\n")
            self._file.flush()
        except OSError:
            self._failed = True  # a full disk: the caller reports it, and the run's stdout still carries events
            self.close()
            raise

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:  # its last buffered line could not be written either: the disk is full
                pass


def read_events(path: Path, after: int = 0) -> list[tuple[int, Envelope]]:
    """(line number, event) for each complete event line after line ``after``."""
    if not Path(path).exists():
        return []
    found = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if number <= after or not line.endswith("\n"):
                continue
            try:
                found.append((number, parse_line(line)))
            except EventParseError:
                continue
    return found
