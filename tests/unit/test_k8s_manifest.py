"""`backprop k8s manifest`: a TrainJob that Kubeflow Trainer's own models (PyPI kubeflow-trainer-api) accept,
read back for what a cluster would run: image, command, resources, volumes."""

import json

import pytest
from backpropagate.config import command_settings
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.k8s.trainjob import validate
from backpropagate.runs.plan import plan_train

from tests.conftest import ROOT, run_cli

kubeflow = pytest.importorskip("kubeflow_trainer_api.models", reason="the k8s extra (in dev) validates manifests")

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


@pytest.fixture
def planned_run(tmp_path, monkeypatch):
    """A planned training run in a workspace (spec.json and its history row), as `train` leaves one."""
    monkeypatch.setenv("BACKPROPAGATE_MODEL__NAME", "Qwen/Qwen2.5-0.5B-Instruct")  # a hub id: nothing is loaded
    output = tmp_path / "out"
    plan = plan_train(command_settings(output), QUICKSTART)
    RunHistory(output).append(HistoryRow(run_id=plan.spec.run_id, status="failed", run_dir=str(plan.folder.root)))
    return output, plan.spec.run_id


def test_the_trainjob_runs_the_pinned_image_under_torchrun_on_the_workspace_volume(planned_run):
    output, run_id = planned_run
    made = run_cli("k8s", "manifest", run_id[:8], "--output", str(output), "--nodes", "2", "--gpus-per-node", "4",
                   "--pvc", "team-workspace", "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout.splitlines()[-1])["result"]
    assert summary["validated"] is True

    job = kubeflow.TrainerV1alpha1TrainJob.from_dict(json.loads((output / run_id / "trainjob.json").read_text()))
    assert (job.api_version, job.kind, job.spec.runtime_ref.name) == (
        "trainer.kubeflow.org/v1alpha1", "TrainJob", "torch-distributed")
    trainer = job.spec.trainer
    assert trainer.image.startswith("backpropagate/train:") and "-cuda-" in trainer.image
    assert trainer.command == ["python", "-m", "torch.distributed.run", "-m", "backpropagate_stages.train"]
    assert trainer.args == ["--spec", f"/workspace/{run_id}/k8s.spec.json"]
    assert (trainer.num_nodes, trainer.num_proc_per_node) == (2, 4)
    limits = trainer.resources_per_node.limits
    assert {name: quantity.actual_instance for name, quantity in limits.items()} == {"nvidia.com/gpu": "4"}
    pod = job.spec.runtime_patches[0].training_runtime_spec.template.spec.replicated_jobs[0].template.spec.template.spec
    assert pod.volumes[0].persistent_volume_claim.claim_name == "team-workspace"
    assert [(m.name, m.mount_path) for m in pod.containers[0].volume_mounts] == [("workspace", "/workspace")]
    assert pod.volumes[0].name == "workspace" and pod.containers[0].name == "node"

    inside = json.loads((output / run_id / "k8s.spec.json").read_text())
    assert inside["run_dir"] == f"/workspace/{run_id}"
    assert inside["data"]["path"] == f"/workspace/{run_id}/input/data"
    assert inside["resume"] is True  # a restarted pod continues from the newest checkpoint


def test_cpu_pods_ask_for_cores_not_gpus(planned_run):
    output, run_id = planned_run
    made = run_cli("k8s", "manifest", run_id, "--output", str(output), "--gpus-per-node", "0",
                   "--processes-per-node", "3", "--json")
    assert made.returncode == 0, made.stderr
    trainer = json.loads((output / run_id / "trainjob.json").read_text())["spec"]["trainer"]
    assert (trainer["numProcPerNode"], trainer["resourcesPerNode"]) == (3, {"requests": {"cpu": "3"}})
    assert "-cpu-" in trainer["image"]


def test_validation_refuses_a_field_the_schema_lacks_and_a_wrong_type(planned_run):
    output, run_id = planned_run
    assert run_cli("k8s", "manifest", run_id, "--output", str(output)).returncode == 0
    job = json.loads((output / run_id / "trainjob.json").read_text())
    validate(job)
    job["spec"]["trainer"]["gpus"] = 4
    with pytest.raises(ValueError, match="spec.trainer.gpus"):
        validate(job)
    del job["spec"]["trainer"]["gpus"]
    job["spec"]["trainer"]["numNodes"] = "2"
    with pytest.raises(ValueError, match="numNodes"):
        validate(job)


def test_gpu_pods_for_a_run_planned_on_the_cpu_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROPAGATE_MODEL__NAME", "Qwen/Qwen2.5-0.5B-Instruct")
    monkeypatch.setenv("BACKPROPAGATE_TRAINING__DEVICE", "cpu")
    output = tmp_path / "out"
    plan = plan_train(command_settings(output), QUICKSTART)
    RunHistory(output).append(HistoryRow(run_id=plan.spec.run_id, status="failed", run_dir=str(plan.folder.root)))
    refused = run_cli("k8s", "manifest", plan.spec.run_id, "--output", str(output), "--gpus-per-node", "2")
    assert refused.returncode != 0
    assert (f"[CONFIG_VALUE_INVALID]: --gpus-per-node=2 is not valid: run {plan.spec.run_id[:8]} was planned with "
            "--device cpu") in refused.stderr
    assert not (output / plan.spec.run_id / "trainjob.json").exists()
