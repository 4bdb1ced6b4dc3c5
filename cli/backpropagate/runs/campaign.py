"""Running a campaign: each run in turn, as an ordinary run, then the merged adapter on every earlier
run's held-out data.

The campaign keeps its state in the history (its row lists its runs; each run's row says how it
ended) and in its runs' folders, so a campaign whose process died anywhere is continued by running
this again: completed runs are kept, the run that was cut off resumes from its newest checkpoint,
the next ones start as planned. The campaign's lock tells a dead process from a live one: while
a process runs the campaign it holds campaign.lock, and the kernel drops it when the process dies.
"""

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from backpropagate.config import Settings, output_dir
from backpropagate.contract.campaign import CampaignFolder, CampaignPlan
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory, iso_time
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.settings import ModelSettings
from backpropagate.contract.specs import CampaignStep, EvalSpec, write_spec
from backpropagate.contract.stages import STAGES
from backpropagate.output import Output
from backpropagate.runs.campaign_plan import copy_adapter
from backpropagate.runs.campaign_replay import replay_summary
from backpropagate.runs.evaluate import EvalPlan
from backpropagate.runs.plan import TrainPlan, plan_resume, plan_train
from backpropagate.runs.session import Session


@dataclass(frozen=True)
class CampaignResult:
    campaign_id: str
    campaign_dir: Path
    adapter_path: Path  # the merged adapter after the last run
    runs: list[dict] = field(default_factory=list)  # run_id, index, final_loss, losses, merge_lambda
    evals: list[dict] = field(default_factory=list)  # after_run, on_run, eval_loss_base, eval_loss, hits


def run_campaign(plan: CampaignPlan, folder: CampaignFolder, settings: Settings, out: Output,
                 quiet: bool = False) -> CampaignResult:
    from filelock import FileLock, Timeout

    output = output_dir(settings).resolve()
    lock = FileLock(str(folder.lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BackpropError("STATE_CAMPAIGN_BUSY", campaign_id=plan.campaign_id, lock=folder.lock) from None
    history = RunHistory(output)
    try:
        row = history.get(plan.campaign_id)
        if row.status != "running" or row.campaign_runs:
            history.update(plan.campaign_id, status="running", error_code=None,
                           **({"resumed_at": iso_time(time.time())} if row.campaign_runs else {}))
        runs = []
        for index in range(1, len(plan.runs) + 1):
            runs.append(_run(plan, index, runs[-1] if runs else None, output, settings, out, quiet, history))
            copy_adapter(Path(runs[-1]["merged_adapter"]), folder.adapter)
            _evaluate(plan, folder, index, settings, out, quiet, history)
    except BackpropError as error:
        status = "interrupted" if error.code == "RUNTIME_INTERRUPTED" else "failed"
        history.update(plan.campaign_id, status=status, error_code=error.code, finished_at=iso_time(time.time()))
        raise
    except KeyboardInterrupt:
        history.update(plan.campaign_id, status="interrupted", error_code="RUNTIME_INTERRUPTED",
                       finished_at=iso_time(time.time()))
        raise BackpropError("RUNTIME_INTERRUPTED", run_id=plan.campaign_id) from None
    finally:
        lock.release()
    rows = [history.get(run["run_id"]) for run in runs]
    row = history.update(plan.campaign_id, status="completed", adapter=str(folder.adapter),
                         final_loss=runs[-1]["final_loss"], steps_done=sum(r["steps"] for r in runs),
                         runtime=rows[-1].runtime, device=rows[-1].device, finished_at=iso_time(time.time()),
                         duration_s=round(sum(r.duration_s or 0 for r in rows), 2))
    return CampaignResult(campaign_id=plan.campaign_id, campaign_dir=folder.root, adapter_path=folder.adapter,
                          runs=runs, evals=list(row.campaign_evals))


def _run(plan: CampaignPlan, index: int, previous: dict | None, output: Path, settings: Settings, out: Output,
         quiet: bool, history: RunHistory) -> dict:
    """Run ``index`` of the campaign: kept if it completed, resumed if it was cut off, else started."""
    listed = history.get(plan.campaign_id).campaign_runs
    existing = history.get(listed[index - 1]) if len(listed) >= index else None
    if existing is not None and existing.status == "completed":
        return _summary(existing, index)
    if existing is not None:
        if existing.status == "running":  # we hold the campaign's lock: the process that ran it is gone
            history.update(existing.run_id, status="interrupted", error_code="RUNTIME_INTERRUPTED")
        train_plan = plan_resume(output, existing.run_id)
        if not quiet:
            out.note(f"campaign {plan.campaign_id[:8]}: run {index} of {len(plan.runs)} ({existing.run_id[:8]}) "
                     "resumes from its newest checkpoint")
    else:
        train_plan = _plan_run(plan, index, previous, output, settings)
        history.update(plan.campaign_id, campaign_runs=list(listed[:index - 1]) + [train_plan.spec.run_id])
        if not quiet:
            out.note(f"campaign {plan.campaign_id[:8]}: run {index} of {len(plan.runs)} is {train_plan.spec.run_id}")
    result = Session.for_settings(settings, out, quiet, trackers=True).run(train_plan.pipeline())["train"]
    row = history.update(train_plan.spec.run_id, merge_lambda=result.merge_lambda)
    return _summary(row, index) | {"losses": list(result.losses)}


def _plan_run(plan: CampaignPlan, index: int, previous: dict | None, output: Path, settings: Settings) -> TrainPlan:
    run = plan.runs[index - 1]
    run_settings = Settings(log_level=plan.log_level, log_json=settings.log_json, output=str(output),
                            runtime=settings.runtime, model=ModelSettings(name=plan.model), training=plan.training,
                            lora=plan.lora, docker=settings.docker)
    train_plan = plan_train(run_settings, run["data"].path, plan.data_format, plan.skip_invalid,
                            run["eval_data"].path if run["eval_data"] else None,
                            run["eval_prompts"].path if run["eval_prompts"] else None)
    parent = previous["run_id"] if previous else ""
    step = CampaignStep(campaign_id=plan.campaign_id, index=index, merge=plan.merge, parent_run=parent,
                        parent_adapter=str(RunFolder.of(output, parent).adapter) if parent else "",
                        parent_merged=previous["merged_adapter"] if previous else "")
    spec = replace(train_plan.spec, campaign=step, data=replace(train_plan.spec.data, source=run["data"].source))
    write_spec(spec, train_plan.folder.spec)
    replayed = replay_summary(CampaignFolder.of(output, plan.campaign_id).run_replayed(index))
    return replace(train_plan, spec=spec, row_fields={"campaign": plan.campaign_id, "campaign_index": index,
                                                      "parent_run": parent or None, "merge": plan.merge,
                                                      "replayed": replayed})


def _summary(row, index: int) -> dict:
    return {"run_id": row.run_id, "index": index, "final_loss": row.final_loss, "steps": row.steps_done or 0,
            "merge_lambda": row.merge_lambda, "merged_adapter": str(RunFolder(Path(row.run_dir)).merged_adapter)}


def _evaluate(plan: CampaignPlan, folder: CampaignFolder, after: int, settings: Settings, out: Output, quiet: bool,
              history: RunHistory) -> None:
    """The merged adapter after run ``after`` on the held-out rows (and prompts) of that run and every
    earlier one; figures already recorded (a resumed campaign) are not measured again."""
    done = {(e["after_run"], e["on_run"]) for e in history.get(plan.campaign_id).campaign_evals}
    for on in range(1, after + 1):
        run = plan.runs[on - 1]
        if (after, on) in done or not (run["eval_data"] or run["eval_prompts"] or plan.training.eval_split):
            continue
        target = RunFolder(folder.eval_dir(after, on))
        target.root.mkdir(parents=True, exist_ok=True)
        spec = EvalSpec(run_id=f"{plan.campaign_id}-after-{after}-on-{on}", run_dir=str(target.root),
                        model=plan.model, adapter=str(folder.adapter), training=plan.training, data=run["data"],
                        eval_data=run["eval_data"], eval_prompts=run["eval_prompts"], log_level=plan.log_level)
        write_spec(spec, target.spec_of(STAGES["eval"].spec_file))
        summary = Session.for_settings(settings, out, quiet=True).run(EvalPlan(spec, target).pipeline())["eval"].quality
        figures = {"after_run": after, "on_run": on, "eval_loss_base": summary.get("eval_loss_before"),
                   "eval_loss": summary.get("eval_loss_after"), "hits": summary.get("hits")}
        figures = {key: value for key, value in figures.items() if value is not None}
        evals = history.get(plan.campaign_id).campaign_evals + [figures]
        history.update(plan.campaign_id, campaign_evals=evals)
        if not quiet:
            out.note(f"campaign {plan.campaign_id[:8]}: after run {after}, on run {on}'s held-out data: "
                     + ", ".join(f"{k} {v}" for k, v in figures.items() if k not in ("after_run", "on_run")))
