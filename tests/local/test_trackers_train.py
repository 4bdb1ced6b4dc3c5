"""Experiment trackers fed by a real training run on the tiny model, through the real CLI, all offline."""

import json

from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli
from tests.unit.tracker_readback import mlflow_run, tensorboard_run, wandb_run

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def test_one_training_run_reaches_tensorboard_mlflow_and_wandb_with_the_losses_it_printed(tiny_model, tmp_path):
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--device", "cpu", "--steps", "4",
                     "--eval-split", "0.2", "--output", str(tmp_path / "out"), "--json", "--report-to", "auto",
                     env={"MLFLOW_TRACKING_URI": tracking, "WANDB_MODE": "offline", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    events = [parse_line(line) for line in result.stdout.splitlines() if '"event"' in line]  # W&B printed none
    progress = [e.event for e in events if e.event.name == "progress"]
    losses = [(p.step, p.loss) for p in progress]
    assert len(losses) == 4 and all(p.grad_norm > 0 for p in progress)
    announced = next(e.event for e in events if e.event.name == "metric" and e.event.key == "trackers")
    assert announced.value == "tensorboard on; mlflow on; wandb on"
    run_id = events[0].run_id
    run_dir = tmp_path / "out" / run_id
    adapter_sha = json.loads((run_dir / "manifest.json").read_text())

    board = tensorboard_run(run_dir / "tensorboard")
    assert [(step, round(value, 4)) for step, value in board["scalars"]["train/loss"]] == \
        [(step, round(loss, 4)) for step, loss in losses]
    assert [step for step, _ in board["scalars"]["eval/loss"]] == [0, 4]
    assert board["texts"]["status"] == ["finished"]

    flow = mlflow_run(tracking, run_id)
    assert flow["metrics"]["train/loss"] == losses
    assert flow["status"] == "FINISHED" and flow["params"]["training.steps"] == "4"
    assert flow["tags"]["artifact.adapter.sha256"] in json.dumps(adapter_sha)

    biases = wandb_run(run_dir)
    assert biases["id"] == biases["name"] == run_id
    assert [(row["_step"], row["train/loss"]) for row in biases["history"] if "train/loss" in row] == losses
    assert biases["summary"]["artifact/adapter"]["sha256"] == flow["tags"]["artifact.adapter.sha256"]

    row = RunHistory(tmp_path / "out").get(run_id)
    assert [tracker["name"] for tracker in row.trackers] == ["tensorboard", "mlflow", "wandb"]
    assert all("dropped" not in tracker for tracker in row.trackers)
