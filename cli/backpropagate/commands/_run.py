"""Running a planned training run and reporting it: shared by `train`, `resume` and `replay`."""

from pathlib import Path

from backpropagate.commands._quality import quality_lines
from backpropagate.config import Settings, output_flag
from backpropagate.contract.quality import read_report
from backpropagate.contract.schema import to_dict
from backpropagate.output import Output
from backpropagate.runs.plan import TrainPlan
from backpropagate.runs.session import Session


def run_and_report(out: Output, plan: TrainPlan, settings: Settings) -> None:
    """Run the plan in a session (the trackers `--report-to` turns on included), render its events, print where
    the adapter is."""
    verb = "resuming run" if plan.resume else "training run"
    session = Session.for_settings(settings, out, trackers=True)
    out.note(f"{verb} {plan.spec.run_id} on the {session.runtime.name} runtime")
    if plan.memory is not None:
        out.note(plan.memory if isinstance(plan.memory, str) else plan.memory.line())
    out.note(f"dataset {Path(plan.spec.data.source).name}: {len(plan.dataset.examples)} examples in the "
             f"{plan.dataset.format} format"
             + (f", {len(plan.dataset.dropped)} invalid rows skipped" if plan.dataset.dropped else ""))
    result = session.run(plan.pipeline())["train"]
    report = read_report(plan.folder.quality)
    out.result(
        f"adapter: {result.adapter}\nrun id: {plan.spec.run_id}\nloss: {result.losses[0]:.4f} -> "
        f"{result.final_loss:.4f} over {result.steps} steps ({result.tokens_per_s:,.0f} tokens/s)"
        + ("".join("\n" + line for line in quality_lines(report)) if report else "")
        + f"\nnext: backprop export {plan.spec.run_id[:8]}{output_flag(settings)} --format gguf",
        {"run_id": plan.spec.run_id, "run_dir": plan.spec.run_dir, "runtime": session.runtime.name,
         **to_dict(result)},
    )
