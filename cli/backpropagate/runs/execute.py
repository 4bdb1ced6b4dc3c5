"""Executing a planned run on a runtime: record it in the history, follow its events, report how it ended."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope
from backpropagate.contract.history import RunHistory, iso_time
from backpropagate.runs.plan import TrainPlan
from backpropagate.runtimes import Runtime


@dataclass
class RunOutcome:
    run_id: str
    run_dir: str
    outputs: dict[str, Any] = field(default_factory=dict)


def execute_train(plan: TrainPlan, runtime: Runtime, on_event: Callable[[Envelope], None]) -> RunOutcome:
    """Run the train stage; returns its outputs or raises the stage's coded error."""
    runtime.check()
    history = RunHistory(plan.output)
    spec = plan.spec
    started = time.time()
    if plan.resume:
        history.update(spec.run_id, status="running", resumed_at=iso_time(started), error_code=None)
    else:
        history.append({
            "run_id": spec.run_id, "status": "running", "stage": "train", "runtime": runtime.name,
            "model": spec.model, "dataset": spec.data.source, "dataset_sha256": spec.data.sha256,
            "steps": spec.training.steps, "run_dir": spec.run_dir, "started_at": iso_time(started),
            **({"replay_of": plan.replay_of} if plan.replay_of else {}),
        })
    seen: dict[str, Any] = {}
    incidents: dict[str, list] = {"oom_adjustments": [], "thermal_pauses": []}

    def follow(envelope: Envelope) -> None:
        event = envelope.event
        if isinstance(event, (events.Error, events.Finished)):
            seen[event.name] = event
        elif isinstance(event, events.Warning) and event.code == "oom_recovered":
            incidents["oom_adjustments"].append(event.message)
        elif isinstance(event, events.Paused):
            incidents["thermal_pauses"].append(event.reading)
        on_event(envelope)

    def close(status: str, **fields: Any) -> None:
        history.update(spec.run_id, status=status, finished_at=iso_time(time.time()),
                       duration_s=round(time.time() - started, 2), **incidents, **fields)

    try:
        ended = runtime.run("train", plan.folder.spec, follow)
    except KeyboardInterrupt:
        close("interrupted", error_code="RUNTIME_INTERRUPTED")
        raise BackpropError("RUNTIME_INTERRUPTED", run_id=spec.run_id) from None

    try:
        finished = ending(ended, seen, "train", plan.folder.log)
    except BackpropError as error:
        close(getattr(seen.get("finished"), "status", "failed"), error_code=error.code)
        raise
    outputs = finished.outputs
    close("completed", steps_done=outputs.get("steps"), final_loss=outputs.get("final_loss"),
          adapter=outputs.get("adapter"), device=outputs.get("device"))
    return RunOutcome(run_id=spec.run_id, run_dir=spec.run_dir, outputs=outputs)


def ending(ended, seen: dict[str, Any], stage: str, log) -> events.Finished:
    """The stage's finished event, or its coded error: the one it reported, else RUNTIME_STAGE_FAILED."""
    error, finished = seen.get("error"), seen.get("finished")
    if error is not None:
        raise BackpropError.from_event(error.code, error.message, error.fix)
    if ended.code != 0 or finished is None:
        tail = ended.stderr_tail.strip().splitlines()
        reason = tail[-1] if tail else f"the stage ended with exit code {ended.code} before it finished"
        raise BackpropError("RUNTIME_STAGE_FAILED", stage=stage, reason=reason, log=log)
    return finished


def execute_stage(runtime: Runtime, stage: str, spec_path, log, on_event: Callable[[Envelope], None]
                  ) -> dict[str, Any]:
    """Run one stage to its end; returns its outputs or raises its coded error."""
    runtime.check()
    seen: dict[str, Any] = {}

    def follow(envelope: Envelope) -> None:
        if isinstance(envelope.event, (events.Error, events.Finished)):
            seen[envelope.event.name] = envelope.event
        on_event(envelope)

    return ending(runtime.run(stage, spec_path, follow), seen, stage, log).outputs
