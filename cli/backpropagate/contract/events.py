"""The event protocol: what a stage says on stdout, one JSON object per line.

Every line is an envelope ``{"v": 1, "ts": ..., "run_id": ..., "stage": ..., "event": ...}``
plus the fields of one event type below. Stages emit, the host parses and renders;
both use this module, so the wire format is defined once. Golden files in
``tests/unit/golden/`` pin it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from backpropagate.contract.redact import redact_data

SCHEMA_VERSION = 1
HOST = "host"  # the stage name of events the host itself emits (a fallback it chose, say)


@dataclass(frozen=True)
class Started:
    name: ClassVar[str] = "started"
    message: str = ""


@dataclass(frozen=True)
class Progress:
    name: ClassVar[str] = "progress"
    step: int
    total: int
    loss: float
    lr: float
    tokens_per_s: float
    eta_s: float
    grad_norm: float | None = None  # before clipping


@dataclass(frozen=True)
class Metric:
    name: ClassVar[str] = "metric"
    key: str
    value: float | int | str
    step: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    name: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Artifact:
    name: ClassVar[str] = "artifact"
    kind: str  # "adapter", "merged", "gguf", ...
    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Warning:
    name: ClassVar[str] = "warning"
    code: str  # a short stable slug, e.g. "chat_template_fallback"
    message: str


@dataclass(frozen=True)
class Paused:
    name: ClassVar[str] = "paused"
    reason: str
    reading: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resumed:
    name: ClassVar[str] = "resumed"
    reason: str


@dataclass(frozen=True)
class Error:
    name: ClassVar[str] = "error"
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class Finished:
    name: ClassVar[str] = "finished"
    status: str  # "completed" | "failed" | "interrupted"
    outputs: dict[str, Any] = field(default_factory=dict)


EVENT_TYPES: dict[str, type] = {
    cls.name: cls
    for cls in (Started, Progress, Metric, Checkpoint, Artifact, Warning, Paused, Resumed, Error, Finished)
}


@dataclass(frozen=True)
class Envelope:
    """One line on the wire: who said it, when, and the event itself."""

    run_id: str
    stage: str
    event: Any
    ts: float = field(default_factory=time.time)
    v: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"v": self.v, "ts": self.ts, "run_id": self.run_id, "stage": self.stage,
                "event": self.event.name, **asdict(self.event)}

    def to_line(self) -> str:
        """The one serializer of an event: what goes on stdout, into events.jsonl and to the web UI, redacted."""
        return json.dumps(redact_data(self.to_dict()), ensure_ascii=False, separators=(",", ":"))


class EventParseError(ValueError):
    """A stdout line that is not a valid event of this schema version."""


def parse_line(line: str) -> Envelope:
    """Parse one wire line back into an Envelope; raises EventParseError with the reason."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EventParseError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventParseError("not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise EventParseError(f"schema version {data.get('v')!r}, expected {SCHEMA_VERSION}")
    cls = EVENT_TYPES.get(data.get("event"))
    if cls is None:
        raise EventParseError(f"unknown event {data.get('event')!r}")
    names = {f.name for f in fields(cls)}
    envelope_keys = {"v", "ts", "run_id", "stage", "event"}
    unknown = set(data) - names - envelope_keys
    if unknown:
        raise EventParseError(f"unknown fields for {cls.name}: {', '.join(sorted(unknown))}")
    try:
        event = cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise EventParseError(f"bad {cls.name} event: {exc}") from None
    return Envelope(run_id=data["run_id"], stage=data["stage"], event=event, ts=data["ts"])
