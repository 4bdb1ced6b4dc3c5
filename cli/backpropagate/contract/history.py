"""run_history.json: one typed row per run, shared by every process that writes to the workspace.

Every change is read-modify-write under a file lock, and the file is replaced
atomically, so concurrent writers lose nothing and a crash never leaves half a
file. A history that cannot be read is never overwritten: commands stop with
``STATE_HISTORY_CORRUPT`` and a copy of the bad file is kept beside it. One written by a newer
version (a higher format version, or a top-level field this one does not know) is refused with
``STATE_HISTORY_NEWER`` and left as it is: rewriting it here would drop what this version cannot read.
"""

import dataclasses
import json
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backpropagate.contract import bounded_json
from backpropagate import __version__
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text, sha256_file
from backpropagate.contract.ids import match_run
from backpropagate.contract.redact import redact_data
from backpropagate.contract.schema import from_dict
from backpropagate.contract.workspace import check_readable, check_writable

HISTORY_FILE = "run_history.json"
FORMAT_VERSION = 1
DOCUMENT_KEYS = ("version", "runs")
STATUSES = ("running", "completed", "failed", "interrupted")


@dataclass(frozen=True)
class HistoryRow:
    """What the history keeps of one run. Unset fields are left out of the file."""

    run_id: str
    status: str  # one of STATUSES
    stage: str = "train"  # train, or export for an adapter folder exported on its own
    runtime: str | None = None
    workers: int | None = None  # a training run's data-parallel processes
    model: str | None = None
    dataset: str | None = None  # the user's path, redacted
    dataset_sha256: str | None = None
    adapter: str | None = None
    steps: int | None = None  # asked for
    steps_done: int | None = None
    final_loss: float | None = None
    device: str | None = None
    run_dir: str | None = None
    started_at: str | None = None
    resumed_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    replay_of: str | None = None
    error_code: str | None = None
    oom_adjustments: list = field(default_factory=list)
    thermal_pauses: list = field(default_factory=list)
    restarts: list = field(default_factory=list)  # why the runtime restarted lost workers (Ray), in order
    warnings: list = field(default_factory=list)  # what the host chose for the user, and why
    trackers: list = field(default_factory=list)  # experiment trackers that received the run, and where
    merged: str | None = None
    gguf: str | None = None
    gguf_verify: dict | None = None
    lora_gguf: str | None = None
    lora_gguf_verify: dict | None = None
    ollama: list = field(default_factory=list)  # models registered from this run
    hub: list = field(default_factory=list)  # Hub commits of this run's files: repo, revision, commit, what
    quality: dict | None = None  # the quality report's summary: held-out loss before and after, hits
    versions: dict | None = None
    campaign: str | None = None  # a run of a campaign: the campaign's id
    campaign_index: int | None = None  # and its place in it, from 1
    parent_run: str | None = None  # the campaign's previous run
    merge: str | None = None  # a campaign and its runs: a name of contract/merges.py
    merge_lambda: float | None = None  # a run of a merging campaign: the weight of its B in the merge
    replayed: dict | None = None  # a run under --replay: its own rows, how many it replayed, from which runs
    campaign_runs: list = field(default_factory=list)  # a campaign: its runs' ids, in order
    campaign_evals: list = field(default_factory=list)  # a campaign: held-out figures after each run
    extra: dict = field(default_factory=dict)  # fields this version does not know, kept as found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HistoryRow":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**{k: v for k, v in data.items() if v is not None and v != []}, **self.extra}


class RunHistory:
    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = self.output / HISTORY_FILE

    def rows(self) -> list[HistoryRow]:
        """All rows, oldest first. A missing file is an empty history.

        Reading takes no lock (the file is only ever replaced whole), so a command that only reads
        creates nothing, not even the lock file, in a workspace that does not exist."""
        return self._read()

    def append(self, row: HistoryRow) -> None:
        self._change(lambda rows: rows + [_redacted(row)])

    def update(self, run_id: str, **fields: Any) -> HistoryRow | None:
        """Set ``fields`` on the run's row; returns the row as written (None if there is no such run)."""
        updated: list[HistoryRow] = []

        def change(rows: list[HistoryRow]) -> list[HistoryRow]:
            result = []
            for row in rows:
                if row.run_id == run_id:
                    row = _redacted(dataclasses.replace(row, **fields))
                    updated.append(row)
                result.append(row)
            return result

        self._change(change)
        return updated[0] if updated else None

    def get(self, run_id: str) -> HistoryRow | None:
        return next((row for row in self.rows() if row.run_id == run_id), None)

    def find(self, prefix: str) -> HistoryRow:
        """The row whose run id starts with ``prefix`` (coded errors for none or several)."""
        rows = self.rows()
        run_id = match_run(prefix, [row.run_id for row in rows], str(self.path), str(self.output))
        return next(row for row in rows if row.run_id == run_id)

    def _change(self, change: Callable[[list[HistoryRow]], list[HistoryRow]]) -> None:
        check_writable(self.output)
        self.output.mkdir(parents=True, exist_ok=True)
        with self._locked():
            rows = change(self._read())
            document = {"version": FORMAT_VERSION, "runs": [row.to_dict() for row in rows]}
            atomic_write_text(self.path, json.dumps(document, indent=1) + "\n")

    @contextmanager
    def _locked(self):
        from filelock import FileLock

        self.output.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=60):
            yield

    def _read(self) -> list[HistoryRow]:
        check_readable(self.output)
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            document = bounded_json.loads(text)
            self._check_format(document)
            rows = document["runs"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) and "run_id" in r for r in rows):
                raise ValueError("'runs' is not a list of runs")
            problems = [problem for index, row in enumerate(rows) for problem in _row_problems(index, row)]
            if problems:
                raise ValueError("; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if problems[3:] else ""))
            return [HistoryRow.from_dict(row) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise BackpropError("STATE_HISTORY_CORRUPT", path=self.path, reason=reason,
                                backup=self._backup()) from None

    def _check_format(self, document: Any) -> None:
        """Refuse a history this version would misread; a newer one is named so, and left untouched."""
        if not isinstance(document, dict):
            raise ValueError("it is not a JSON object")
        version = document["version"]
        if type(version) is not int or version < 1:
            raise ValueError(f"'version' is {version!r}, not a format version")
        unknown = [key for key in document if key not in DOCUMENT_KEYS]
        if version > FORMAT_VERSION or unknown:
            reason = (f"format version {version}" if version > FORMAT_VERSION
                      else f"it has field {unknown[0]!r}, unknown to format version {version}")
            raise BackpropError("STATE_HISTORY_NEWER", path=self.path, reason=reason, version=__version__,
                                known=FORMAT_VERSION)

    def _backup(self) -> Path:
        # Named by content: every command meets the same bad file, and one copy of it is enough.
        backup = self.path.with_name(f"{HISTORY_FILE}.corrupt-{sha256_file(self.path)[:12]}")
        if not backup.exists():
            shutil.copy2(self.path, backup)
        return backup


def _row_problems(index: int, row: dict) -> list[str]:
    """Each field of a row that does not have its type (a null run_id, a text step count); unknown fields pass."""
    known = {f.name for f in dataclasses.fields(HistoryRow)} - {"extra"}
    return from_dict(HistoryRow, {k: v for k, v in row.items() if k in known}, f"runs[{index}].")[1]


def _redacted(row: HistoryRow) -> HistoryRow:
    return HistoryRow.from_dict(redact_data(row.to_dict()))


def iso_time(timestamp: float) -> str:
    """How the history writes a moment: UTC, to the second."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")
