"""The run history: a row opened when a run starts, its incidents kept, its outcome written when it ends.

A train run (new or resumed) and an adapter folder exported on its own own their row's status.
An export of an existing run records what it made on that run's row, once it has made it.
"""

import dataclasses
import time
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.events import HOST, Envelope
from backpropagate.contract.history import HistoryRow, RunHistory, iso_time
from backpropagate.contract.stages import WORKERS_RESTARTED
from backpropagate.contract.specs import GgufResult, MergeResult, TrainResult
from backpropagate.sinks.base import RunEnd, RunStart


class HistorySink:
    required = True
    name = "history"

    def __init__(self) -> None:
        self.history: RunHistory | None = None
        self.start: RunStart | None = None
        self.row: HistoryRow | None = None
        self.oom_adjustments: list = []
        self.thermal_pauses: list = []
        self.restarts: list = []
        self.warnings: list = []

    def open(self, start: RunStart) -> None:
        self.start = start
        self.history = RunHistory(Path(start.run_dir).parent)  # the workspace the run folder is in
        trained_on = {"runtime": start.runtime, "workers": start.workers} if start.kind == "train" else {}
        if start.new_row is not None:
            self.row = dataclasses.replace(start.new_row, **({"runtime": start.runtime} | trained_on))
            self.history.append(self.row)
            return
        self.row = self.history.get(start.run_id)
        if start.resume:  # where and on how many workers it goes on
            self.row = self.history.update(start.run_id, status="running", resumed_at=iso_time(time.time()),
                                           error_code=None, **trained_on)

    def event(self, envelope: Envelope) -> None:
        event = envelope.event
        if isinstance(event, events.Warning) and event.code == "oom_recovered":
            self.oom_adjustments.append(event.message)
        elif isinstance(event, events.Paused):
            self.thermal_pauses.append(event.reading)
        elif isinstance(event, events.Warning) and event.code == WORKERS_RESTARTED:
            self.restarts.append(event.message)
        elif isinstance(event, events.Warning) and envelope.stage == HOST:
            self.warnings.append({"code": event.code, "message": event.message})

    def close(self, end: RunEnd) -> None:
        if self.row is None:  # an export of a folder with no history row
            return
        fields = {}
        owns_status = self.start.kind == "train" or self.start.new_row is not None
        if owns_status:
            fields |= {"status": end.status, "error_code": end.error_code, "finished_at": iso_time(time.time())}
        if self.start.kind == "train":
            fields |= {"duration_s": round(end.duration_s, 2),
                       "oom_adjustments": self.row.oom_adjustments + self.oom_adjustments,
                       "thermal_pauses": self.row.thermal_pauses + self.thermal_pauses,
                       "restarts": self.row.restarts + self.restarts}
        if self.warnings:
            fields["warnings"] = self.row.warnings + self.warnings
        if end.trackers:
            fields["trackers"] = self.row.trackers + end.trackers
        if end.status == "completed":
            for result in end.results.values():
                fields |= _recorded(result)
            qualities = [result.quality for result in end.results.values() if getattr(result, "quality", None)]
            if qualities:  # each stage's summary is of the whole report, so the last one is the newest
                fields["quality"] = qualities[-1]
        if fields:
            self.history.update(self.start.run_id, **fields)


def _recorded(result) -> dict:
    """The fields of the history row a stage's result fills in."""
    if isinstance(result, TrainResult):
        return {"steps_done": result.steps, "final_loss": result.final_loss, "adapter": result.adapter,
                "device": result.device}
    if isinstance(result, MergeResult):
        return {"merged": result.merged}
    if isinstance(result, GgufResult):
        key = "lora_gguf" if result.kind == "lora" else "gguf"
        return {key: result.gguf, f"{key}_verify": result.verify}
    return {}
