"""From a run in the workspace to what a cluster runs: its spec with in-cluster paths, the image, the TrainJob."""

import json
from dataclasses import replace
from pathlib import Path

from backpropagate.config import Settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import TrainSpec, read_spec
from backpropagate.images.recipes import RECIPES, image_ref
from backpropagate.k8s.trainjob import WORKSPACE, ClusterShape, train_job
from backpropagate.runtimes.mounts import rebase

SPEC_FILE = "k8s.spec.json"  # in the run folder, next to spec.json
MANIFEST_FILE = "trainjob.json"


def plan_train_job(settings: Settings, run: str, shape: ClusterShape,
                   image: str | None) -> tuple[dict, Path, list[str]]:
    """(the TrainJob, the in-cluster spec written into the run folder, what the user must copy to the volume)."""
    output = output_dir(settings).resolve()
    row = RunHistory(output).find(run)
    if row.stage != "train":
        raise BackpropError("CONFIG_VALUE_INVALID", name="RUN", value=run, reason=f"a {row.stage} run has no training",
                            allowed="the id of a training run (backprop list-runs)")
    folder = RunFolder.of(output, row.run_id)
    planned = read_spec(TrainSpec, folder.spec)
    if shape.gpus_per_node and planned.training.device == "cpu":
        raise BackpropError("CONFIG_VALUE_INVALID", name="--gpus-per-node", value=shape.gpus_per_node,
                            reason=f"run {row.run_id[:8]} was planned with --device cpu",
                            allowed="0 (CPU pods) for this run, or a run planned with --device auto or cuda")
    # Resuming: a pod that restarts continues from the newest checkpoint rather than from step 0.
    spec = to_dict(replace(planned, resume=True))
    spec = rebase(spec, str(output), WORKSPACE)
    copies = [f"{folder.root} -> {WORKSPACE}/{row.run_id} (dereferencing input/data)"]
    model = Path(spec["model"]).expanduser()
    if model.is_absolute() and model.exists():  # a local base model: it goes onto the volume too
        spec["model"] = f"{WORKSPACE}/models/{model.name}"
        copies.append(f"{model} -> {spec['model']}")
    inside = folder.root / SPEC_FILE
    inside.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    if image is None:
        variant = "cuda" if shape.gpus_per_node else "cpu"
        image = image_ref(RECIPES["train"], variant, settings.docker.base_image)
        if settings.docker.registry:
            image = f"{settings.docker.registry.rstrip('/')}/{image}"
    manifest = train_job(f"backprop-{row.run_id[:8]}", image, f"{WORKSPACE}/{row.run_id}/{SPEC_FILE}", shape)
    return manifest, inside, copies
