"""Planning and running an export: which adapter, which base, where the result goes.

The target is a run id (or prefix), a run folder, or an adapter folder. A run's
export lands in its own folder and is recorded on its history row; a bare adapter
folder gets a new run folder of its own.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backpropagate import __version__
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope
from backpropagate.contract.history import RunHistory, iso_time
from backpropagate.contract.ids import new_run_id
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.specs import GgufSpec, MergeSpec, TrainSpec, read_spec, write_spec
from backpropagate.runs.execute import execute_stage
from backpropagate.runtimes import Runtime


@dataclass(frozen=True)
class ExportPlan:
    spec: MergeSpec
    folder: RunFolder
    output: Path
    new_run: bool  # a bare adapter folder: the export is a run of its own
    gguf: GgufSpec | None = None  # set for --format gguf (after the merge) and lora-gguf (no merge)
    merge: bool = True


def plan_export(output: Path, target: str, dtype: str = "float16", export_format: str = "merged",
                quantization: str = "q4_k_m", verify: bool = True) -> ExportPlan:
    plan = _plan_merge(output, target, dtype)
    if export_format == "merged":
        return plan
    data = ""
    if plan.folder.spec.exists():
        data = read_spec(TrainSpec, plan.folder.spec).data.path
    if export_format == "lora-gguf":
        gguf = GgufSpec(run_id=plan.spec.run_id, run_dir=plan.spec.run_dir, kind="lora", adapter=plan.spec.adapter,
                        base_model=plan.spec.base_model, quantization="f16", verify=verify, data=data,
                        log_level=plan.spec.log_level)
    else:
        gguf = GgufSpec(run_id=plan.spec.run_id, run_dir=plan.spec.run_dir, merged=str(plan.folder.merged),
                        quantization=quantization, verify=verify, data=data, log_level=plan.spec.log_level)
    write_spec(gguf, plan.folder.root / "gguf.spec.json")
    return replace(plan, gguf=gguf, merge=export_format != "lora-gguf")


def _plan_merge(output: Path, target: str, dtype: str) -> ExportPlan:
    output = Path(output).resolve()
    path = Path(target).expanduser()
    if (path / "adapter_config.json").exists() and not (path.parent / "spec.json").exists():
        return _plan_for_bare_adapter(output, path.resolve(), dtype)
    if (path / "spec.json").exists():
        folder = RunFolder(path.resolve())
    elif (path / "adapter_config.json").exists():
        folder = RunFolder(path.resolve().parent)
    else:
        folder = RunFolder.of(output, RunHistory(output).find(target)["run_id"])
    train = read_spec(TrainSpec, folder.spec)
    if not (folder.adapter / "adapter_config.json").exists():
        raise BackpropError("STATE_NO_ADAPTER", run_id=train.run_id, run_dir=folder.root)
    spec = MergeSpec(run_id=train.run_id, run_dir=str(folder.root), base_model=train.model,
                     adapter=str(folder.adapter), dtype=dtype, log_level=train.log_level)
    write_spec(spec, folder.root / "merge.spec.json")
    return ExportPlan(spec=spec, folder=folder, output=folder.root.parent, new_run=False)


def _plan_for_bare_adapter(output: Path, adapter: Path, dtype: str) -> ExportPlan:
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise BackpropError("INPUT_ADAPTER_UNSUPPORTED", path=adapter,
                            reason="adapter_config.json does not name its base_model_name_or_path")
    run_id = new_run_id()
    folder = RunFolder.of(output, run_id)
    folder.root.mkdir(parents=True)
    spec = MergeSpec(run_id=run_id, run_dir=str(folder.root), base_model=base, adapter=str(adapter), dtype=dtype)
    write_spec(spec, folder.root / "merge.spec.json")
    return ExportPlan(spec=spec, folder=folder, output=output, new_run=True)


def execute_export(plan: ExportPlan, runtime: Runtime, on_event: Callable[[Envelope], None]) -> dict[str, Any]:
    history = RunHistory(plan.output)
    if plan.new_run:
        history.append({"run_id": plan.spec.run_id, "status": "running", "stage": "export", "runtime": runtime.name,
                        "model": plan.spec.base_model, "adapter": plan.spec.adapter, "run_dir": plan.spec.run_dir,
                        "started_at": iso_time(time.time()), "versions": {"backpropagate": __version__}})
    try:
        outputs = {}
        if plan.merge:
            outputs |= execute_stage(runtime, "merge", plan.folder.root / "merge.spec.json", plan.folder.log,
                                     on_event)
        if plan.gguf is not None:
            outputs |= execute_stage(runtime, "gguf", plan.folder.root / "gguf.spec.json", plan.folder.log,
                                     on_event)
    except BackpropError as error:
        if plan.new_run:
            history.update(plan.spec.run_id, status="failed", error_code=error.code)
        raise
    key = "lora_gguf" if plan.gguf and plan.gguf.kind == "lora" else "gguf"
    history.update(plan.spec.run_id, **({"merged": outputs["merged"]} if plan.merge else {}),
                   **({key: outputs["gguf"], f"{key}_verify": outputs["verify"]} if plan.gguf else {}),
                   **({"status": "completed"} if plan.new_run else {}))
    return outputs
