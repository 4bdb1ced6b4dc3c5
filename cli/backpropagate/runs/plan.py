"""Planning a training run: check the inputs, pick a run id, write spec.json.

Everything that can be checked without the ML stack is checked here, before a run
folder or a history row exists: a bad dataset or model path costs nothing.
"""

import platform
from dataclasses import dataclass
from pathlib import Path

from backpropagate import __version__
from backpropagate.config import Settings, output_dir
from backpropagate.dataset import Dataset, load_dataset
from backpropagate.errors import BackpropError
from backpropagate.model_ref import check_model_ref
from backpropagate.runs.files import sha256_file
from backpropagate.runs.folder import RunFolder
from backpropagate.runs.history import RunHistory
from backpropagate.runs.ids import new_run_id
from backpropagate.specs import DataSpec, TrainSpec, write_spec


@dataclass(frozen=True)
class TrainPlan:
    spec: TrainSpec
    folder: RunFolder
    output: Path
    dataset: Dataset  # as read on the host, for the summary shown before training


def check_conflicts(settings: Settings) -> None:
    """Flag combinations that cannot work, refused before anything runs."""
    if settings.lora.qlora and settings.training.device == "cpu":
        raise BackpropError("CONFIG_QLORA_NEEDS_CUDA")


def plan_train(settings: Settings, data: str | Path, data_format: str = "auto", skip_invalid: bool = False) -> TrainPlan:
    check_conflicts(settings)
    model = settings.model.name
    check_model_ref(model)
    # Resolve a local model to an absolute path: the stage may run from another folder.
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    data_path = Path(data).expanduser().resolve()
    dataset = load_dataset(data_path, data_format, skip_invalid)

    output = output_dir(settings).resolve()
    RunHistory(output).rows()  # a corrupt history stops the run here, before a run folder exists
    run_id = new_run_id()
    folder = RunFolder.of(output, run_id)
    folder.root.mkdir(parents=True)
    spec = TrainSpec(
        run_id=run_id,
        run_dir=str(folder.root),
        model=model,
        data=DataSpec(path=str(data_path), format=data_format, skip_invalid=skip_invalid,
                      sha256=sha256_file(data_path)),
        training=settings.training,
        lora=settings.lora,
        log_level=settings.log_level,
        versions={"backpropagate": __version__, "python": platform.python_version()},
    )
    write_spec(spec, folder.spec)
    return TrainPlan(spec=spec, folder=folder, output=output, dataset=dataset)
