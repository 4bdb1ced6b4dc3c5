"""The session: one follow loop that hands every event to every sink and reads the stage's typed result.

The runtime here is a stand-in (it replays what a stage would print) so the loop and the sinks can
be checked without the ML stack; the real runtimes run the same loop in the local and docker tiers.
"""

import json

import pytest
from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import MergeResult
from backpropagate.runs.session import Pipeline, Session, Step
from backpropagate.runtimes import RuntimeChoice, StageExit
from backpropagate.sinks.base import RunStart
from backpropagate.sinks.events_file import EventsFileSink
from backpropagate.sinks.history import HistorySink

MERGED = MergeResult(merged="/w/run/merged", shards=1, dtype="float16", bytes=10)


class ReplayRuntime:
    """A stand-in runtime: replays the events a stage would print, then exits with ``code``."""

    name = "replay"
    workers = 1

    def __init__(self, script: list, code: int = 0) -> None:
        self.script, self.code = script, code

    def check(self) -> None:
        pass

    def run(self, stage, spec_path, on_event) -> StageExit:
        for event in self.script:
            on_event(Envelope(run_id="r1", stage=stage, event=event))
        return StageExit(code=self.code, stderr_tail="")


class RecordingSink:
    required = True
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list = []

    def open(self, start) -> None:
        self.calls.append(("open", start.run_id))

    def event(self, envelope) -> None:
        self.calls.append(("event", envelope.event.name))

    def close(self, end) -> None:
        self.calls.append(("close", end.status, end.error_code))


class BrokenTracker:
    required = False
    name = "broken tracker"

    def open(self, start) -> None:
        pass

    def event(self, envelope) -> None:
        raise ConnectionError("tracker server went away")

    def close(self, end) -> None:
        raise AssertionError("a dropped sink is not called again")


def _pipeline(tmp_path) -> Pipeline:
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    row = HistoryRow(run_id="r1", status="running", stage="export", run_dir=str(run_dir))
    start = RunStart(run_id="r1", run_dir=run_dir, kind="export", runtime="", new_row=row)
    return Pipeline(start=start, steps=(Step("merge", run_dir / "merge.spec.json"),), log=run_dir / "log.txt")


def _session(runtime, *sinks) -> Session:
    return Session(RuntimeChoice(runtime, "local", "test"), list(sinks))


def test_every_sink_sees_the_run_open_each_event_and_the_run_close(tmp_path):
    recorder = RecordingSink()
    runtime = ReplayRuntime([events.Started(), events.Metric(key="shards", value=1),
                             events.Finished(status="completed", outputs=to_dict(MERGED))])
    results = _session(runtime, recorder, HistorySink()).run(_pipeline(tmp_path))
    assert results == {"merge": MERGED}
    assert recorder.calls == [("open", "r1"), ("event", "started"), ("event", "metric"), ("event", "finished"),
                              ("close", "completed", None)]
    row = RunHistory(tmp_path).find("r1")
    assert (row.status, row.runtime, row.merged) == ("completed", "replay", "/w/run/merged")


def test_a_failing_optional_sink_is_dropped_with_a_coded_warning_and_the_run_goes_on(tmp_path):
    recorder = RecordingSink()
    runtime = ReplayRuntime([events.Started(), events.Finished(status="completed", outputs=to_dict(MERGED))])
    session = _session(runtime, BrokenTracker(), recorder, HistorySink(), EventsFileSink())
    assert session.run(_pipeline(tmp_path)) == {"merge": MERGED}
    assert recorder.calls[:3] == [("open", "r1"), ("event", "warning"), ("event", "started")]
    assert recorder.calls[-1] == ("close", "completed", None)
    row = RunHistory(tmp_path).find("r1")
    assert row.status == "completed"
    message = "broken tracker stopped receiving this run: ConnectionError: tracker server went away"
    assert row.warnings == [{"code": "sink_failed", "message": message}]
    assert row.trackers == [{"name": "broken tracker", "dropped": "ConnectionError: tracker server went away"}]
    lines = [json.loads(line) for line in (tmp_path / "r1" / "events.jsonl").read_text().splitlines()]
    assert [(line["stage"], line["code"]) for line in lines if line["event"] == "warning"] == [("host", "sink_failed")]


def test_a_stage_error_event_is_raised_with_its_code_and_the_row_is_closed_failed(tmp_path):
    runtime = ReplayRuntime([events.Started(), events.Error(code="RUNTIME_DISK_FULL", message="disk full", fix="free"),
                             events.Finished(status="failed")], code=5)
    with pytest.raises(BackpropError) as caught:
        _session(runtime, HistorySink()).run(_pipeline(tmp_path))
    assert (caught.value.code, caught.value.message, caught.value.fix) == ("RUNTIME_DISK_FULL", "disk full", "free")
    row = RunHistory(tmp_path).find("r1")
    assert (row.status, row.error_code) == ("failed", "RUNTIME_DISK_FULL")


def test_results_that_break_the_contract_are_a_stage_failure_naming_the_field(tmp_path):
    runtime = ReplayRuntime([events.Finished(status="completed", outputs={"merged": "/m", "shards": "one"})])
    with pytest.raises(BackpropError) as caught:
        _session(runtime, HistorySink()).run(_pipeline(tmp_path))
    error = caught.value
    assert error.code == "RUNTIME_STAGE_FAILED"
    assert error.message.startswith("stage merge failed: its results do not match the contract: "
                                    "outputs.shards: expected an integer, got str 'one'")
    assert "outputs.dtype: missing" in error.message
    assert RunHistory(tmp_path).find("r1").status == "failed"


def test_a_stage_that_exits_without_finishing_is_a_stage_failure(tmp_path):
    with pytest.raises(BackpropError) as caught:
        _session(ReplayRuntime([events.Started()], code=1), HistorySink()).run(_pipeline(tmp_path))
    assert caught.value.code == "RUNTIME_STAGE_FAILED"
    assert "the stage ended with exit code 1 before it finished" in caught.value.message


def test_the_hosts_own_warnings_go_to_the_history_row_and_events_jsonl(tmp_path):
    pipeline = _pipeline(tmp_path)
    fallback = events.Warning(code="gpu_fallback", message="no GPU: running without one")

    class FallbackRuntime(ReplayRuntime):
        def run(self, stage, spec_path, on_event):
            on_event(Envelope(run_id="r1", stage=events.HOST, event=fallback))
            return super().run(stage, spec_path, on_event)

    runtime = FallbackRuntime([events.Finished(status="completed", outputs=to_dict(MERGED))])
    _session(runtime, HistorySink(), EventsFileSink()).run(pipeline)
    assert RunHistory(tmp_path).find("r1").warnings == [{"code": "gpu_fallback",
                                                         "message": "no GPU: running without one"}]
    line = json.loads((tmp_path / "r1" / "events.jsonl").read_text())
    assert (line["stage"], line["event"], line["code"]) == ("host", "warning", "gpu_fallback")
