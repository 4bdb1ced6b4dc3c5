"""The event wire format: one golden line per event type pins it; parsing is strict."""

import json
from pathlib import Path

import pytest
from backpropagate.contract import events
from backpropagate.contract.events import EVENT_TYPES, Envelope, EventParseError, parse_line

GOLDEN = Path(__file__).parent / "golden"

SAMPLES = {
    "started": events.Started(message="run_started run_id=r1 stage=train"),
    "progress": events.Progress(step=3, total=30, loss=2.5, lr=0.0002, tokens_per_s=1234.5, eta_s=12.0,
                                  grad_norm=0.75),
    "metric": events.Metric(key="examples", value=5),
    "checkpoint": events.Checkpoint(step=10, path="output/r1/checkpoints/step-10"),
    "artifact": events.Artifact(kind="adapter", path="output/r1/adapter", bytes=1024, sha256="ab" * 32),
    "warning": events.Warning(code="chat_template_fallback", message="no chat template; using ChatML"),
    "paused": events.Paused(reason="gpu_temperature", reading={"temperature_c": 88}),
    "resumed": events.Resumed(reason="gpu_temperature"),
    "error": events.Error(code="INPUT_DATASET_INVALID", message="d.jsonl:2: text is empty", fix="fix that row"),
    "finished": events.Finished(status="completed", outputs={"adapter": "output/r1/adapter"}),
}


def test_every_event_type_has_a_golden_sample():
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_event_wire_format_matches_its_golden_file(name):
    line = Envelope(run_id="r1", stage="train", event=SAMPLES[name], ts=1700000000.0).to_line()
    golden = (GOLDEN / f"{name}.json").read_text().strip()
    assert json.loads(line) == json.loads(golden)
    assert parse_line(golden).event == SAMPLES[name]


def test_every_event_carries_the_envelope():
    data = json.loads(Envelope(run_id="abc", stage="train", event=events.Started()).to_line())
    assert {"v", "ts", "run_id", "stage", "event"} <= set(data)
    assert data["v"] == 1 and data["run_id"] == "abc"


@pytest.mark.parametrize("line, reason", [
    ("not json", "not JSON"),
    ('{"v": 2, "ts": 0, "run_id": "r", "stage": "train", "event": "started"}', "schema version 2"),
    ('{"v": 1, "ts": 0, "run_id": "r", "stage": "train", "event": "exploded"}', "unknown event 'exploded'"),
    ('{"v": 1, "ts": 0, "run_id": "r", "stage": "train", "event": "checkpoint", "step": 1}', "bad checkpoint"),
    ('{"v": 1, "ts": 0, "run_id": "r", "stage": "train", "event": "started", "extra": 1}', "unknown fields"),
])
def test_a_malformed_line_is_refused_with_the_reason(line, reason):
    with pytest.raises(EventParseError, match=reason):
        parse_line(line)
