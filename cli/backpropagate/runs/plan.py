"""Planning a training run: check the inputs, pick a run id, write spec.json.

Everything that can be checked without the ML stack is checked here, before a run
folder or a history row exists: a bad dataset or model path costs nothing.
"""

import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from backpropagate import __version__
from backpropagate.config import Settings, output_dir
from backpropagate.contract.dataset import Dataset, dataset_file, load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import is_disk_full, sha256_file
from backpropagate.contract.history import HistoryRow, RunHistory, iso_time
from backpropagate.contract.ids import new_run_id
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.model_ref import check_model_ref
from backpropagate.contract.quality import load_prompts, prompts_file
from backpropagate.contract.redact import redact
from backpropagate.contract.settings import ModelSettings
from backpropagate.contract.specs import DataSpec, PromptsSpec, TrainSpec, read_run_spec, write_spec
from backpropagate.contract.stages import STAGES
from backpropagate.contract.workspace import check_writable
from backpropagate.planning.device import gpu_absent
from backpropagate.planning.presets import find_preset
from backpropagate.planning.run_plan import RunPlan, plan_run, refuse_if_too_big
from backpropagate.runs.ownership import owner_of, shown_status
from backpropagate.runs.session import Pipeline, Step
from backpropagate.sinks.trackers import check_trackers
from backpropagate.sinks.base import RunStart


@dataclass(frozen=True)
class TrainPlan:
    spec: TrainSpec
    folder: RunFolder
    output: Path
    dataset: Dataset  # as read on the host, for the summary shown before training
    resume: bool = False
    replay_of: str | None = None
    row_fields: dict = field(default_factory=dict)  # more for a new run's history row (a campaign's run: its place)
    memory: "RunPlan | str | None" = None  # the memory plan shown before training, or why there is none

    def pipeline(self) -> Pipeline:
        """The train stage on this plan's spec; a new run opens its history row."""
        spec = self.spec
        new_row = None if self.resume else HistoryRow(
            run_id=spec.run_id, status="running", stage="train", model=shown_model(spec, self.folder),
            dataset=spec.data.source, dataset_sha256=spec.data.sha256, steps=spec.training.steps, run_dir=spec.run_dir,
            started_at=iso_time(time.time()), replay_of=self.replay_of, **self.row_fields)
        start = RunStart(run_id=spec.run_id, run_dir=self.folder.root, kind="train", runtime="", spec=spec,
                         resume=self.resume, new_row=new_row)
        return Pipeline(start=start, steps=(Step("train", self.folder.spec_of(STAGES["train"].spec_file)),),
                        log=self.folder.log)


def check_conflicts(settings: Settings) -> None:
    """Flag combinations that cannot work, refused before anything runs."""
    check_trackers(settings.report_to)
    if settings.lora.qlora and settings.training.device == "cpu":
        raise BackpropError("CONFIG_QLORA_NEEDS_CUDA")
    if settings.training.device == "cuda":  # asked for explicitly: refused here rather than after the run starts
        absent = gpu_absent()
        if absent:
            raise BackpropError("DEP_GPU_NOT_AVAILABLE", reason=f"NVML finds none: {absent}")
    if settings.training.thermal_resume_c >= settings.training.thermal_pause_c:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--thermal-resume-c",
                            value=settings.training.thermal_resume_c, reason="must be below --thermal-pause-c "
                            f"({settings.training.thermal_pause_c})", allowed="a temperature below the pause one")


def plan_train(settings: Settings, data: str | Path, data_format: str = "auto", skip_invalid: bool = False,
               eval_data: str | Path | None = None, eval_prompts: str | Path | None = None) -> TrainPlan:
    check_conflicts(settings)
    if eval_data is not None and settings.training.eval_split:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--eval-split", value=settings.training.eval_split,
                            reason="--eval-data already gives the held-out rows",
                            allowed="0 with --eval-data, or drop --eval-data to hold out part of --data")
    memory = memory_plan(settings)
    preset = find_preset(settings.model.name)
    model = preset.hub_id if preset else settings.model.name
    check_model_ref(model)
    # Resolve a local model to an absolute path: the stage may run from another folder.
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    data_path = dataset_file(data, "--data")
    dataset = load_dataset(data_path, data_format, skip_invalid)
    if settings.training.eval_split and len(dataset.examples) < 2:
        raise BackpropError("INPUT_EVAL_SPLIT_TOO_FEW", split=settings.training.eval_split, path=redact(str(data_path)),
                            count=len(dataset.examples))
    # Checked here too, so a bad eval file costs nothing.
    eval_path = dataset_file(eval_data, "--eval-data") if eval_data is not None else None
    prompts_path = prompts_file(eval_prompts) if eval_prompts is not None else None
    if eval_path is not None:
        load_dataset(eval_path, "auto", skip_invalid)
    if prompts_path is not None:
        load_prompts(prompts_path, redact(str(prompts_path)))

    output = output_dir(settings).resolve()
    check_writable(output)
    RunHistory(output).rows()  # a corrupt history stops the run here, before a run folder exists
    run_id = new_run_id()
    folder = RunFolder.of(output, run_id)
    try:
        folder.root.mkdir(parents=True)
        spec = _write_train_spec(settings, run_id, folder, model, data_path, data_format, skip_invalid, eval_path,
                                 prompts_path)
    except OSError as exc:
        shutil.rmtree(folder.root, ignore_errors=True)  # a run that could not be planned leaves nothing
        if is_disk_full(exc):
            raise BackpropError("RUNTIME_DISK_FULL", path=exc.filename or folder.root, output=output,
                                then="run the command again") from None
        raise
    return TrainPlan(spec=spec, folder=folder, output=output, dataset=dataset, memory=memory)


def memory_plan(settings: Settings) -> RunPlan | str:
    """The run's memory plan, refused when it cannot fit; or, where no plan can be made offline (a hub
    model not yet downloaded, a shape plans do not cover), why there is none: the run goes on without."""
    try:
        plan = plan_run(settings)
    except BackpropError as error:
        if error.code not in ("INPUT_MODEL_CONFIG_NOT_CACHED", "INPUT_MODEL_SHAPE_UNKNOWN"):
            raise
        return f"no plan: {error.message}"
    refuse_if_too_big(plan)
    return plan


def _write_train_spec(settings: Settings, run_id: str, folder: RunFolder, model: str, data_path: Path,
                      data_format: str, skip_invalid: bool, eval_path: Path | None,
                      prompts_path: Path | None) -> TrainSpec:
    spec = TrainSpec(
        run_id=run_id,
        run_dir=str(folder.root),
        model=_model_named_safely(model, folder),
        data=DataSpec(path=str(_link(data_path, folder.data_link)), format=data_format, skip_invalid=skip_invalid,
                      sha256=sha256_file(data_path), source=redact(str(data_path))),
        eval_data=None if eval_path is None else DataSpec(
            path=str(_link(eval_path, folder.eval_data_link)), skip_invalid=skip_invalid,
            sha256=sha256_file(eval_path), source=redact(str(eval_path))),
        eval_prompts=None if prompts_path is None else PromptsSpec(
            path=str(_link(prompts_path, folder.eval_prompts_link)), sha256=sha256_file(prompts_path),
            source=redact(str(prompts_path))),
        training=settings.training,
        lora=settings.lora,
        log_level=settings.log_level,
        versions={"backpropagate": __version__, "python": platform.python_version()},
    )
    write_spec(spec, folder.spec)
    return spec


def plan_resume(output: Path, run: str) -> TrainPlan:
    """Continue a failed or interrupted run in its own folder, with its own spec."""
    output = Path(output).resolve()
    row = RunHistory(output).find(run)
    check_writable(output)
    folder = RunFolder.of(output, row.run_id)
    status = shown_status(row.status, folder.root)  # a run whose host died is still `running` in the file
    if status == "running":
        raise BackpropError("STATE_RUN_IN_USE", run_id=row.run_id, owner=owner_of(folder.root))
    if status not in ("failed", "interrupted", "dead"):
        raise BackpropError("STATE_NOTHING_TO_RESUME", run_id=row.run_id, status=row.status)
    spec = replace(read_run_spec(folder.spec, folder.root, row.run_id), resume=True)
    dataset = load_dataset(spec.data.path, spec.data.format, spec.data.skip_invalid)
    write_spec(spec, folder.spec)
    return TrainPlan(spec=spec, folder=folder, output=output, dataset=dataset, resume=True)


def plan_replay(output: Path, run: str, steps: int | None = None, allow_changed_data: bool = False) -> TrainPlan:
    """A new run with the resolved spec of an earlier one, on the same (unchanged) data file."""
    output = Path(output).resolve()
    row = RunHistory(output).find(run)
    old_folder = RunFolder.of(output, row.run_id)
    old = read_run_spec(old_folder.spec, old_folder.root, row.run_id)
    try:
        data_path = dataset_file(old.data.path)  # the run folder's link leads to the user's file
    except BackpropError as error:
        if error.code != "INPUT_DATASET_NOT_FOUND":
            raise
        raise BackpropError("INPUT_DATASET_NOT_FOUND", path=old.data.source or old.data.path) from None
    now = sha256_file(data_path)
    if now != old.data.sha256 and not allow_changed_data:
        raise BackpropError("INPUT_DATASET_CHANGED", path=old.data.source or data_path, run_id=row.run_id,
                            old=old.data.sha256[:12], new=now[:12])
    training = replace(old.training, steps=steps) if steps is not None else old.training
    settings = Settings(log_level=old.log_level, output=str(output), model=ModelSettings(name=old.model),
                        training=training, lora=old.lora)
    plan = plan_train(settings, data_path, old.data.format, old.data.skip_invalid,
                      eval_data=old.eval_data.path if old.eval_data else None,
                      eval_prompts=old.eval_prompts.path if old.eval_prompts else None)
    return replace(plan, replay_of=row.run_id)


def _model_named_safely(model: str, folder: RunFolder) -> str:
    """A local model whose path holds a token is named through a link in the run folder, as the data is.
    Only then: a link would hide the model's name from list-runs and from the adapter's config."""
    if redact(model) == model or not Path(model).exists():
        return model
    return str(_link(Path(model), folder.model_link))


def shown_model(spec: TrainSpec, folder: RunFolder) -> str:
    """The model as the user named it (redacted), also when the spec names it through the run folder's link."""
    return redact(str(folder.model_link.resolve())) if Path(spec.model) == folder.model_link else spec.model


def _link(data_path: Path, link: Path) -> Path:
    """The spec names a link in the run folder, so the user's path (which may hold a token) is not
    written into spec.json; where links are not possible, the path itself."""
    link.parent.mkdir(exist_ok=True)
    try:
        link.symlink_to(data_path)
    except OSError:
        return data_path
    return link
