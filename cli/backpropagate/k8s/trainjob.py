"""A Kubeflow Trainer v2 ``TrainJob`` for a run: the pinned train image under the torch-distributed runtime.

Kubeflow Trainer starts ``nodes`` pods of the image and sets torchrun's ``PET_*`` variables in each
(nodes, processes per node, node rank, master address); the command is torchrun on the train stage,
so every process joins one process group and the stage trains data-parallel as under
``--workers``. The run folder sits on a PersistentVolumeClaim mounted at ``/workspace`` in every pod;
the stage reads a copy of the run's spec whose paths point there. Rank 0 writes the checkpoints,
and the spec asks to resume, so a restarted job continues from the newest checkpoint.
"""

from dataclasses import dataclass

WORKSPACE = "/workspace"
API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIME = "torch-distributed"  # the ClusterTrainingRuntime Kubeflow Trainer installs for PyTorch
CONTAINER = "node"  # the trainer container (and replicated job) of that runtime
PATCH_MANAGER = "backpropagate.dev/k8s-manifest"


@dataclass(frozen=True)
class ClusterShape:
    nodes: int  # pods, one per machine
    gpus_per_node: int  # 0: CPU processes
    processes_per_node: int  # one per GPU, or CPU processes
    pvc: str  # the PersistentVolumeClaim holding the workspace
    namespace: str = ""


def train_job(name: str, image: str, spec_in_cluster: str, shape: ClusterShape) -> dict:
    """The TrainJob as a plain dict (what ``kubectl apply -f`` takes as JSON)."""
    if shape.gpus_per_node:
        resources = {"limits": {"nvidia.com/gpu": str(shape.gpus_per_node)}}
    else:
        resources = {"requests": {"cpu": str(shape.processes_per_node)}}
    metadata = {"name": name, "labels": {"app.kubernetes.io/managed-by": "backpropagate"}}
    if shape.namespace:
        metadata["namespace"] = shape.namespace
    pod_patch = {
        "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": shape.pvc}}],
        "containers": [{"name": CONTAINER, "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}]}],
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": metadata,
        "spec": {
            "runtimeRef": {"name": RUNTIME},
            "trainer": {
                "image": image,
                # torchrun takes nodes, processes per node, rank and rendezvous from the PET_* variables.
                "command": ["python", "-m", "torch.distributed.run", "-m", "backpropagate_stages.train"],
                "args": ["--spec", spec_in_cluster],
                "numNodes": shape.nodes,
                "numProcPerNode": shape.processes_per_node,
                "resourcesPerNode": resources,
                "env": [{"name": "HF_HOME", "value": f"{WORKSPACE}/.cache/huggingface"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"}],
            },
            "runtimePatches": [{
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                    "name": CONTAINER,
                    "template": {"spec": {"template": {"spec": pod_patch}}},
                }]}}},
            }],
        },
    }


def validate(manifest: dict) -> None:
    """Read the manifest through the official models (PyPI ``kubeflow-trainer-api``): a field they do not
    know, or a value of the wrong type, raises ValueError naming it."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    model = TrainerV1alpha1TrainJob.from_dict(manifest)  # pydantic: wrong types raise here
    known = model.to_dict()
    dropped = sorted(_paths(manifest) - _paths(known))  # from_dict skips unknown keys silently
    if dropped:
        raise ValueError(f"fields the TrainJob schema does not have: {', '.join(dropped)}")


def _paths(value, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {p for key, item in value.items() for p in _paths(item, f"{prefix}.{key}" if prefix else key)}
    if isinstance(value, list):
        return {p for i, item in enumerate(value) for p in _paths(item, f"{prefix}[{i}]")}
    return {prefix}
