"""Everything recorded about one run, gathered from its history row and its run folder."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backpropagate.contract.events import EventParseError, parse_line
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder


@dataclass
class RunRecord:
    row: dict[str, Any]
    spec: dict[str, Any]  # spec.json as written (empty when the folder is gone)
    manifest: dict[str, Any]  # manifest.json (empty until the run has finished)
    checkpoints: list[str]
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss, the last report of each step
    learning_rates: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "spec": self.spec, "manifest": self.manifest, "checkpoints": self.checkpoints,
                "losses": [[step, loss] for step, loss in sorted(self.losses.items())],
                "learning_rates": [[step, lr] for step, lr in sorted(self.learning_rates.items())]}


def load_record(output: Path, run: str) -> RunRecord:
    row = RunHistory(output).find(run)
    folder = RunFolder.of(output, row["run_id"])
    record = RunRecord(row=row, spec=_json(folder.spec), manifest=_json(folder.manifest),
                       checkpoints=sorted((p.name for p in folder.checkpoints.glob("step-*")
                                           if p.is_dir() and not p.name.endswith(".partial")),
                                          key=lambda name: int(name.split("-")[1])))
    if folder.events.exists():
        for line in folder.events.read_text(encoding="utf-8").splitlines():
            try:
                event = parse_line(line).event
            except EventParseError:
                continue
            if event.name == "progress":
                # A resumed run reports the steps after its checkpoint again; the later report is the one kept.
                record.losses[event.step] = event.loss
                record.learning_rates[event.step] = event.lr
    return record


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"training": {"lr": 1}} -> {"training.lr": 1}; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
