"""Queries over recorded runs: one run's whole record, a filtered list, what differs between two."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backpropagate.contract.event_log import read_events
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.layout import PARTIAL, RunFolder
from backpropagate.contract.quality import QualityReport, read_report
from backpropagate.contract.schema import to_dict

# Fields that differ between any two runs and say nothing about how they differ.
ALWAYS_DIFFERENT = {"run_id", "run_dir", "started_at", "finished_at", "duration_s", "adapter", "resumed_at",
                    "data.path", "replay_of"}


@dataclass
class RunRecord:
    row: HistoryRow
    spec: dict[str, Any]  # spec.json as written (empty when the folder is gone)
    manifest: dict[str, Any]  # manifest.json (empty until the run has finished)
    checkpoints: list[str]
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss, the last report of each step
    learning_rates: dict[int, float] = field(default_factory=dict)
    quality: QualityReport | None = None  # quality.json, when the run has one

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row.to_dict(), "spec": self.spec, "manifest": self.manifest,
                "checkpoints": self.checkpoints,
                "quality": {**to_dict(self.quality), "hits": self.quality.hits()} if self.quality else None,
                "losses": [[step, loss] for step, loss in sorted(self.losses.items())],
                "learning_rates": [[step, lr] for step, lr in sorted(self.learning_rates.items())]}


def load_record(output: Path, run: str) -> RunRecord:
    row = RunHistory(output).find(run)
    folder = RunFolder.of(output, row.run_id)
    record = RunRecord(row=row, spec=_json(folder.spec), manifest=_json(folder.manifest),
                       checkpoints=sorted((p.name for p in folder.checkpoints.glob("step-*")
                                           if p.is_dir() and not p.name.endswith(PARTIAL)),
                                          key=lambda name: int(name.split("-")[1])),
                       quality=read_report(folder.quality))
    for _, envelope in read_events(folder.events):
        event = envelope.event
        if event.name == "progress":
            # A resumed run reports the steps after its checkpoint again; the later report is the one kept.
            record.losses[event.step] = event.loss
            record.learning_rates[event.step] = event.lr
    return record


def select_runs(rows: list[HistoryRow], status: str | None = None, model: str | None = None,
                limit: int | None = None) -> list[HistoryRow]:
    """Newest first, with the given status and a model name containing ``model``; at most ``limit``."""
    chosen = [row for row in reversed(rows) if (not status or row.status == status)
              and (not model or model in (row.model or ""))]
    return chosen[:limit] if limit else chosen


def comparison(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """What `diff-runs` reports: both run ids, the fields that differ and both final losses."""
    return {"a": a.row.run_id, "b": b.row.run_id, "differences": differences(a, b),
            "final_loss": [a.row.final_loss, b.row.final_loss]}


def differences(a: RunRecord, b: RunRecord) -> dict[str, list]:
    """Setting, result and version fields whose values differ, as {field: [a's, b's]}."""
    fields_a, fields_b = _fields(a), _fields(b)
    return {key: [fields_a.get(key), fields_b.get(key)] for key in sorted(set(fields_a) | set(fields_b))
            if key not in ALWAYS_DIFFERENT and fields_a.get(key) != fields_b.get(key)}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"training": {"lr": 1}} -> {"training.lr": 1}; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def _fields(record: RunRecord) -> dict[str, Any]:
    spec = {key: value for key, value in record.spec.items() if key not in ("versions", "stage", "resume")}
    # The row's steps is the spec's training.steps: one field, not two.
    row = {k: v for k, v in record.row.to_dict().items() if not isinstance(v, (list, dict)) and k != "steps"}
    return {**flatten(spec), **row, **{f"versions.{k}": v for k, v in record.manifest.get("versions", {}).items()}}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
