"""Planning an export: which adapter, which base, which stage steps, where the result goes.

The target is a run id (or prefix), a run folder, or an adapter folder. A run's export lands
in its own folder and is recorded on its history row; a bare adapter folder gets a new run
folder (and row) of its own. The steps come from the export format table (exports.py).
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from backpropagate import __version__
from backpropagate.contract.campaign import CampaignFolder, read_plan
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import HistoryRow, RunHistory, iso_time
from backpropagate.contract.ids import new_run_id
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.specs import GgufSpec, MergeSpec, read_run_spec, write_spec
from backpropagate.contract.stages import STAGES
from backpropagate.contract.workspace import check_writable
from backpropagate.runs.exports import EXPORT_FORMATS
from backpropagate.runs.session import Pipeline, Step
from backpropagate.sinks.base import RunStart


@dataclass(frozen=True)
class ExportPlan:
    run_id: str
    folder: RunFolder
    base_model: str
    adapter: Path
    export_format: str
    specs: dict  # stage name -> the spec written for it, in the order the steps run
    new_row: HistoryRow | None  # a bare adapter folder: the export is a run of its own
    trained_with: str | None  # the runtime the run was trained on

    def pipeline(self) -> Pipeline:
        steps = tuple(Step(stage, self.folder.spec_of(STAGES[stage].spec_file)) for stage in self.specs)
        start = RunStart(run_id=self.run_id, run_dir=self.folder.root, kind="export", runtime="",
                         new_row=self.new_row)
        return Pipeline(start=start, steps=steps, log=self.folder.log, trained_with=self.trained_with)


def plan_export(output: Path, target: str, export_format: str = "merged", dtype: str = "float16",
                quantization: str = "q4_k_m", verify: bool = True) -> ExportPlan:
    """Find the adapter and its base, and write the spec of each step of ``export_format``."""
    output = Path(output).resolve()
    folder, base_model, adapter, new_row, trained_with = _source(output, target)
    check_writable(folder.root.parent)
    train = read_run_spec(folder.spec, folder.root, folder.root.name) if folder.holds_run else None
    campaign = CampaignFolder(folder.root)
    # A campaign verifies on every run's rows (its data/ folder), as a run does on its own.
    data = train.data.path if train else str(campaign.data) if campaign.holds_campaign else ""
    log_level = train.log_level if train else "INFO"
    # The GGUF answers the run's eval prompts too, so the quality report holds them beside the fine-tune's.
    answering = {"prompts": train.eval_prompts.path, "max_new_tokens": train.training.eval_max_tokens} \
        if train and train.eval_prompts else {}
    if new_row is not None:
        folder.root.mkdir(parents=True)
    run_id, run_dir = folder.root.name, str(folder.root)
    specs: dict = {}
    for stage in EXPORT_FORMATS[export_format].steps:
        if stage == "merge":
            specs[stage] = MergeSpec(run_id=run_id, run_dir=run_dir, base_model=base_model, adapter=str(adapter),
                                     dtype=dtype, log_level=log_level)
        elif export_format == "lora-gguf":
            specs[stage] = GgufSpec(run_id=run_id, run_dir=run_dir, kind="lora", adapter=str(adapter),
                                    base_model=base_model, quantization="f16", verify=verify, data=data,
                                    log_level=log_level)
        else:
            specs[stage] = GgufSpec(run_id=run_id, run_dir=run_dir, merged=str(folder.merged),
                                    quantization=quantization, verify=verify, data=data, log_level=log_level,
                                    **answering)
        write_spec(specs[stage], folder.spec_of(STAGES[stage].spec_file))
    return ExportPlan(run_id=run_id, folder=folder, base_model=base_model, adapter=adapter,
                      export_format=export_format, specs=specs, new_row=new_row, trained_with=trained_with)


def _source(output: Path, target: str) -> tuple[RunFolder, str, Path, HistoryRow | None, str | None]:
    """(run folder, base model, adapter folder, the new history row or None, the training runtime)."""
    path = Path(target).expanduser()
    campaign = CampaignFolder(path) if CampaignFolder(path).holds_campaign else _recorded_campaign(output, target)
    if campaign is not None:  # exported like a run: its merged adapter, into its own folder
        if not (campaign.adapter / "adapter_config.json").exists():
            raise BackpropError("STATE_NO_ADAPTER", run_id=campaign.root.name, run_dir=campaign.root)
        row = RunHistory(campaign.root.parent).get(campaign.root.name)
        return RunFolder(campaign.root.resolve()), read_plan(campaign.plan).model, campaign.adapter.resolve(), None, \
            row.runtime if row else None
    if (path / "adapter_config.json").exists() and not RunFolder(path.parent).holds_run:
        return _bare_adapter(output, path.resolve())
    if RunFolder(path).holds_run:
        folder = RunFolder(path.resolve())
    elif (path / "adapter_config.json").exists():
        folder = RunFolder(path.resolve().parent)
    else:
        folder = RunFolder.of(output, RunHistory(output).find(target).run_id)
    train = read_run_spec(folder.spec, folder.root, folder.root.name)
    if not (folder.adapter / "adapter_config.json").exists():
        raise BackpropError("STATE_NO_ADAPTER", run_id=train.run_id, run_dir=folder.root)
    row = RunHistory(folder.root.parent).get(train.run_id)
    return folder, train.model, folder.adapter, None, row.runtime if row else None


def _recorded_campaign(output: Path, target: str) -> CampaignFolder | None:
    if Path(target).expanduser().exists() or not (output / "run_history.json").exists():
        return None
    row = RunHistory(output).find(target)
    return CampaignFolder.of(output, row.run_id) if row.stage == "campaign" else None


def _bare_adapter(output: Path, adapter: Path) -> tuple[RunFolder, str, Path, HistoryRow, None]:
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise BackpropError("INPUT_ADAPTER_UNSUPPORTED", path=adapter,
                            reason="adapter_config.json does not name its base_model_name_or_path")
    run_id = new_run_id()
    folder = RunFolder.of(output, run_id)
    row = HistoryRow(run_id=run_id, status="running", stage="export", model=base, adapter=str(adapter),
                     run_dir=str(folder.root), started_at=iso_time(time.time()),
                     versions={"backpropagate": __version__})
    return folder, base, adapter, row, None
