"""`backprop k8s manifest`: a Kubeflow Trainer TrainJob that trains a run on a Kubernetes cluster."""

import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import command_settings
from backpropagate.k8s.plan import MANIFEST_FILE, plan_train_job
from backpropagate.k8s.trainjob import ClusterShape, validate
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop k8s manifest 3f2a --nodes 2 --gpus-per-node 4 --pvc my-workspace

  backprop k8s manifest 3f2a --gpus-per-node 0 --processes-per-node 2   # CPU pods

  kubectl apply -f output/<run_id>/trainjob.json
"""

app = typer.Typer(help="Kubernetes manifests that train a run with the cluster's own operator (Kubeflow Trainer).",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("manifest", epilog=EXAMPLES)
def manifest(
    run: Annotated[str, typer.Argument(help="Training run id, or any unique prefix of it: its spec is what the "
                                            "cluster trains.")],
    nodes: Annotated[int, typer.Option(min=1, help="Pods (machines) in the job.")] = 1,
    gpus_per_node: Annotated[int, typer.Option(min=0, help="GPUs per pod, one training process each; 0 for CPU "
                                                           "pods.")] = 1,
    processes_per_node: Annotated[int, typer.Option(min=1, help="Training processes per CPU pod (with "
                                                                "--gpus-per-node 0).")] = 1,
    pvc: Annotated[str, typer.Option(help="PersistentVolumeClaim that holds the workspace, mounted at /workspace "
                                          "in every pod.")] = "backpropagate-workspace",
    image: Annotated[str | None, typer.Option(help="Train image the cluster pulls [default the pinned train "
                                                   "image, under BACKPROPAGATE_DOCKER__REGISTRY when set].")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the TrainJob [default kubectl's].")] = "",
    manifest_path: Annotated[Path | None, typer.Option("--out", help="Where to write the manifest [default "
                                                                     "trainjob.json in the run folder].")] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Write a TrainJob (Kubeflow Trainer v2, torch-distributed runtime) for a run's spec."""
    settings = command_settings(output, json_output)
    out = Output(json_mode=settings.log_json)
    shape = ClusterShape(nodes=nodes, gpus_per_node=gpus_per_node,
                         processes_per_node=gpus_per_node or processes_per_node, pvc=pvc, namespace=namespace)
    job, spec_file, copies = plan_train_job(settings, run, shape, image)
    validated = importlib.util.find_spec("kubeflow_trainer_api") is not None
    if validated:
        validate(job)  # a failure here is this program's defect, not the user's: it is not caught
    else:
        out.warn("not validated: pip install 'backpropagate[k8s]' checks the TrainJob against Kubeflow's own models")
    target = manifest_path or spec_file.parent / MANIFEST_FILE
    target.write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    steps = "\n".join(f"  copy {line}" for line in copies)
    out.result(f"TrainJob: {target}\nbefore `kubectl apply -f {target}`, put onto the volume {pvc}:\n{steps}\n"
               f"image: {job['spec']['trainer']['image']} (the cluster must be able to pull it)",
               {"manifest": str(target), "spec": str(spec_file), "validated": validated, "copy": copies,
                "image": job["spec"]["trainer"]["image"]})
