"""Running a planned training run and reporting it: shared by `train`, `resume` and `replay`."""

from pathlib import Path

from backpropagate.config import Settings
from backpropagate.output import Output
from backpropagate.runs.execute import execute_train
from backpropagate.runs.plan import TrainPlan
from backpropagate.runtimes import Runtime, get_runtime


def runtime_for(settings: Settings, out: Output) -> Runtime:
    """The runtime the settings ask for (auto, docker or local); image builds and pulls show as notes."""
    return get_runtime(settings.runtime, settings.docker, note=out.note)


def run_and_report(out: Output, plan: TrainPlan, settings: Settings) -> None:
    """Run the plan, render its events, print where the adapter is."""
    verb = "run_resumed" if plan.resume else "run_started"
    runtime = runtime_for(settings, out)
    out.note(f"{verb} run_id={plan.spec.run_id} runtime={runtime.name}")
    out.note(f"dataset {Path(plan.spec.data.source).name}: {plan.dataset.format}, "
             f"{len(plan.dataset.examples)} examples"
             + (f", {len(plan.dataset.dropped)} invalid rows skipped" if plan.dataset.dropped else ""))
    outcome = execute_train(plan, runtime, out.event)
    result = outcome.outputs
    out.result(
        f"adapter: {result['adapter']}\nrun id: {outcome.run_id}\nloss: {result['losses'][0]:.4f} -> "
        f"{result['final_loss']:.4f} over {result['steps']} steps ({result['tokens_per_s']:,.0f} tokens/s)",
        {"run_id": outcome.run_id, "run_dir": outcome.run_dir, "runtime": runtime.name, **result},
    )
