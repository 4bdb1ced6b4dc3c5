"""A session runs a planned pipeline of stages on one runtime and hands every event to its sinks.

This is the one follow loop: for each step it starts the stage program, passes each event
on as it arrives, and reads how the stage ended: its typed result, or its coded error. The
sinks (terminal, history, events file, the experiment trackers; the web UI next) see the run open, every
event, and the run close, whatever the ending.
"""

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backpropagate.config import Settings
from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import HOST, Envelope
from backpropagate.contract.files import is_disk_full
from backpropagate.contract.history import RunHistory
from backpropagate.contract.redact import redact
from backpropagate.contract.specs import read_result, secrets_file
from backpropagate.contract.stages import stage_named
from backpropagate.output import Output
from backpropagate.runs.ownership import owning
from backpropagate.runtimes import RuntimeChoice, StageExit, choose_runtime
from backpropagate.sinks.base import RunEnd, RunStart, Sink
from backpropagate.sinks.events_file import EventsFileSink
from backpropagate.sinks.history import HistorySink
from backpropagate.sinks.terminal import TerminalSink
from backpropagate.sinks.trackers import choose_trackers


@dataclass(frozen=True)
class Step:
    stage: str  # a name in the stage registry
    spec_path: Path


@dataclass(frozen=True)
class Pipeline:
    start: RunStart
    steps: tuple[Step, ...]
    log: Path  # the run's log.txt, named in errors
    trained_with: str | None = None  # for an export: the runtime the run was trained with


class Session:
    def __init__(self, choice: RuntimeChoice, sinks: list[Sink], announce: tuple[events.Metric, ...] = ()) -> None:
        self.choice = choice
        self.runtime = choice.runtime
        self.sinks = list(sinks)
        self.announce = announce  # host events every run of this session starts with
        self.run_id: str | None = None
        self.dropped: list[dict] = []  # optional sinks that failed: name and why

    @classmethod
    def for_settings(cls, settings: Settings, out: Output, quiet: bool = False,
                     extra_sinks: tuple[Sink, ...] = (), trackers: bool = False) -> "Session":
        """The runtime the settings ask for, and the house sinks: terminal, history, events file; with
        ``trackers`` (a training run), the experiment trackers ``settings.report_to`` turns on."""
        choice = choose_runtime(settings.runtime, settings, note=None if quiet else out.note)
        sinks = [TerminalSink(out, quiet), HistorySink(), EventsFileSink(), *extra_sinks]
        announce: tuple[events.Metric, ...] = ()
        if trackers:
            chosen = choose_trackers(settings.report_to)
            sinks += chosen.sinks
            announce = (events.Metric(key="trackers", value=chosen.summary),)
        return cls(choice, sinks, announce)

    def run(self, pipeline: Pipeline) -> dict[str, Any]:
        """Run every step in order; returns each stage's typed result, or raises the coded error."""
        self.runtime.check()  # before the history row exists: a missing runtime costs nothing
        start = replace(pipeline.start, runtime=self.runtime.name, workers=self.runtime.workers)
        # Held until the run ends, and dropped by the kernel if this process dies: that is how
        # list-runs tells a live run from one whose host died, and why two hosts never run it at once.
        try:
            with owning(start.run_dir, start.run_id):
                return self._run_owned(pipeline, start)
        except BackpropError as error:
            error.run_id = error.run_id or start.run_id
            raise
        except OSError as exc:  # the host's own writes: history, events file, owner
            if not is_disk_full(exc):
                raise
            began = start.new_row is None or RunHistory(Path(start.run_dir).parent).get(start.run_id) is not None
            if not began:  # nothing of a run that never started stays behind
                shutil.rmtree(start.run_dir, ignore_errors=True)
            raise BackpropError("RUNTIME_DISK_FULL", path=exc.filename or start.run_dir,
                                output=Path(start.run_dir).parent,
                                then=f"`backprop resume {start.run_id}`" if began and start.kind == "train"
                                else "run the command again") from None

    def _run_owned(self, pipeline: Pipeline, start: RunStart) -> dict[str, Any]:
        started = time.time()
        self._open(start)
        for event in (*self.announce, *self._choices_to_announce(pipeline)):
            self._dispatch(Envelope(run_id=start.run_id, stage=HOST, event=event))
        results: dict[str, Any] = {}
        try:
            for step in pipeline.steps:
                results[step.stage] = self._run_step(step, pipeline.log)
        except KeyboardInterrupt:
            self._close(RunEnd("interrupted", "RUNTIME_INTERRUPTED", time.time() - started, results))
            raise BackpropError("RUNTIME_INTERRUPTED", run_id=start.run_id) from None
        except StageFailed as failed:
            self._close(RunEnd(failed.status, failed.error.code, time.time() - started, results))
            raise failed.error from None
        self._close(RunEnd("completed", None, time.time() - started, results))
        return results

    def _run_step(self, step: Step, log: Path) -> Any:
        stage = stage_named(step.stage)
        seen: dict[str, Any] = {}

        def follow(envelope: Envelope) -> None:
            if isinstance(envelope.event, (events.Error, events.Finished)):
                seen[envelope.event.name] = envelope.event
            self._dispatch(envelope)

        try:
            ended = self.runtime.run(step.stage, step.spec_path, follow)
        except BackpropError as error:  # the runtime could not start the stage (image, container)
            raise StageFailed(error, "failed") from None
        finally:
            secrets_file(step.spec_path).unlink(missing_ok=True)  # a stage that never started left it
        finished = _ending(ended, seen, step.stage, log)
        try:
            return read_result(stage.result, step.stage, finished.outputs, log)
        except BackpropError as error:
            raise StageFailed(error, "failed") from None

    def _choices_to_announce(self, pipeline: Pipeline) -> list[events.Warning]:
        """What `auto` chose where the user may not expect it, and why (Cog announces its fallbacks too)."""
        choice, chosen = self.choice, self.runtime.name
        if choice.asked != "auto":
            return []
        if pipeline.trained_with and pipeline.trained_with != chosen:
            return [events.Warning(code="runtime_differs", message=(
                f"{choice.why}, so this export runs on {chosen}; the run was trained on {pipeline.trained_with} "
                f"(pass --runtime {pipeline.trained_with} to export there)"))]
        if chosen == "local":
            return [events.Warning(code="runtime_fallback", message=f"running locally: {choice.why}")]
        return []

    def _open(self, start: RunStart) -> None:
        self.run_id = start.run_id
        # Required sinks first, so an optional one that fails to open is reported through them.
        for sink in sorted(self.sinks, key=lambda sink: not sink.required):
            self._call(sink, "open", start)

    def _dispatch(self, envelope: Envelope) -> None:
        for sink in list(self.sinks):
            if sink in self.sinks:  # not dropped while this event was going round
                self._call(sink, "event", envelope)

    def _close(self, end: RunEnd) -> None:
        # Optional sinks (trackers) close first: the history then records which of them received the run.
        for sink in [sink for sink in self.sinks if not sink.required]:
            self._call(sink, "close", end)
        received = [sink.receipt() for sink in self.sinks if not sink.required and hasattr(sink, "receipt")]
        end = replace(end, trackers=received + self.dropped)
        for sink in [sink for sink in self.sinks if sink.required]:
            self._call(sink, "close", end)

    def _call(self, sink: Sink, method: str, argument: Any) -> None:
        try:
            getattr(sink, method)(argument)
        except Exception as exc:
            if sink.required:
                raise
            self._drop(sink, exc)

    def _drop(self, sink: Sink, exc: Exception) -> None:
        """An optional sink that failed stops receiving the run, with a coded warning the run keeps."""
        self.sinks.remove(sink)
        reason = redact(f"{type(exc).__name__}: {exc}".strip())
        self.dropped.append({"name": sink.name, "dropped": reason})
        warning = events.Warning(code="sink_failed", message=f"{sink.name} stopped receiving this run: {reason}")
        # Told to the required sinks only (the terminal, the history, events.jsonl): they are open
        # whenever another sink fails, and a tracker has nothing to do with another's failure.
        for required in [other for other in self.sinks if other.required]:
            required.event(Envelope(run_id=self.run_id, stage=HOST, event=warning))


class StageFailed(Exception):
    """A step ended in a coded error; ``status`` is how the run ended (failed or interrupted)."""

    def __init__(self, error: BackpropError, status: str) -> None:
        super().__init__(str(error))
        self.error, self.status = error, status


def _ending(ended: StageExit, seen: dict[str, Any], stage: str, log: Path) -> events.Finished:
    """The stage's finished event, or its coded error: the one it reported, else RUNTIME_STAGE_FAILED."""
    error, finished = seen.get("error"), seen.get("finished")
    status = getattr(finished, "status", "failed")
    if error is not None:
        raise StageFailed(BackpropError.from_event(error.code, error.message, error.fix), status)
    if ended.code != 0 or finished is None:
        tail = ended.stderr_tail.strip().splitlines()
        reason = tail[-1] if tail else f"the stage ended with exit code {ended.code} before it finished"
        raise StageFailed(BackpropError("RUNTIME_STAGE_FAILED", stage=stage, reason=reason, log=log), "failed")
    return finished
