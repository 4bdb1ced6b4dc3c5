"""run_history.json: one row per run, shared by every process that writes to the workspace.

Every change is read-modify-write under a file lock, and the file is replaced
atomically, so concurrent writers lose nothing and a crash never leaves half a
file. A history that cannot be read is never overwritten: commands stop with
``STATE_HISTORY_CORRUPT`` and a copy of the bad file is kept beside it.
"""

import json
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.ids import match_run
from backpropagate.contract.redact import redact_data

HISTORY_FILE = "run_history.json"
FORMAT_VERSION = 1


class RunHistory:
    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = self.output / HISTORY_FILE

    def rows(self) -> list[dict[str, Any]]:
        """All rows, oldest first. A missing file is an empty history."""
        with self._locked():
            return self._read()

    def append(self, row: dict[str, Any]) -> None:
        self._change(lambda rows: rows + [redact_data(row)])

    def update(self, run_id: str, **fields: Any) -> dict[str, Any]:
        updated: dict[str, Any] = {}

        def change(rows):
            for row in rows:
                if row["run_id"] == run_id:
                    row.update(redact_data(fields))
                    updated.update(row)
            return rows

        self._change(change)
        return updated

    def find(self, prefix: str) -> dict[str, Any]:
        """The row whose run id starts with ``prefix`` (coded errors for none or several)."""
        rows = self.rows()
        run_id = match_run(prefix, [row["run_id"] for row in rows], str(self.path), str(self.output))
        return next(row for row in rows if row["run_id"] == run_id)

    def _change(self, change: Callable[[list], list]) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        with self._locked():
            rows = change(self._read())
            document = {"version": FORMAT_VERSION, "runs": rows}
            atomic_write_text(self.path, json.dumps(document, indent=1) + "\n")

    @contextmanager
    def _locked(self):
        from filelock import FileLock

        self.output.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=60):
            yield

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            document = json.loads(text)
            rows = document["runs"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) and "run_id" in r for r in rows):
                raise ValueError("'runs' is not a list of runs")
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise BackpropError("STATE_HISTORY_CORRUPT", path=self.path, reason=reason,
                                backup=self._backup()) from None
        return rows

    def _backup(self) -> Path:
        backup = self.path.with_name(f"{HISTORY_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        if not backup.exists():
            shutil.copy2(self.path, backup)
        return backup


def iso_time(timestamp: float) -> str:
    """How the history writes a moment: UTC, to the second."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")
