"""Experiment trackers: which ones `--report-to` turns on, and what each really writes, read back offline.

The trackers here are the real libraries (tensorboardX, MLflow on a sqlite:/// store, W&B in offline
mode) behind the real session; the runtime replays the events the train stage prints for a 3-step
run, so no ML stack is needed. tests/local/test_trackers_train.py feeds them a real training run.
"""

import json
import sys

import pytest
from backpropagate.api import Trainer
from backpropagate.config import command_settings
from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope
from backpropagate.contract.history import RunHistory
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import TrainResult
from backpropagate.output import Output
from backpropagate.runs.plan import plan_train
from backpropagate.runs.session import Session
from backpropagate.runtimes import StageExit
from backpropagate.sinks.trackers import TRACKERS, choose_trackers

from tests.conftest import ROOT, run_cli
from tests.unit.tracker_readback import mlflow_run, tensorboard_run, wandb_run

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"
LOSSES = [2.5, 2.0, 1.5]
GRAD_NORMS = [0.9, 0.8, 0.7]
ADAPTER_SHA = "ab" * 32


class ReplayedTrainStage:
    """A stand-in runtime: replays what the train stage prints for a 3-step run with held-out loss."""

    name = "replay"
    workers = 1

    def check(self) -> None:
        pass

    def run(self, stage, spec_path, on_event) -> StageExit:
        spec = json.loads(spec_path.read_text())
        run_id, adapter = spec["run_id"], spec["run_dir"] + "/adapter"
        script = [events.Started(), events.Metric(key="examples", value=24),
                  events.Metric(key="eval_loss", value=2.75, step=0)]
        script += [events.Progress(step=step, total=3, loss=loss, lr=1e-4 * step, tokens_per_s=1000.0 + step,
                                   eta_s=3.0 - step, grad_norm=norm)
                   for step, (loss, norm) in enumerate(zip(LOSSES, GRAD_NORMS), start=1)]
        script += [events.Metric(key="eval_loss", value=1.25, step=3),
                   events.Artifact(kind="adapter", path=adapter, bytes=1234, sha256=ADAPTER_SHA)]
        result = TrainResult(adapter=adapter, final_loss=LOSSES[-1], losses=LOSSES, learning_rates=[1e-4, 2e-4, 3e-4],
                             steps=3, resumed_from_step=0, tokens=3000, train_seconds=3.0, tokens_per_s=1000.0,
                             oom_adjustments=[], thermal_pauses=[], device="cpu", backend="peft",
                             dataset_format="openai", examples=24, dropped_rows=0, versions={})
        script.append(events.Finished(status="completed", outputs=to_dict(result)))
        with open(spec["run_dir"] + "/events.jsonl", "a", encoding="utf-8") as events_file:
            for event in script:  # as the stage does: each event into the run's events.jsonl, then on stdout
                envelope = Envelope(run_id=run_id, stage=stage, event=event)
                events_file.write(envelope.to_line() + "\n")
                on_event(envelope)
        return StageExit(code=0, stderr_tail="")


def train_with_trackers(tmp_path, report_to: str):
    """Plan a real run (spec, history row), replay its stage's events through the real session and sinks."""
    settings = command_settings(tmp_path / "out", report_to=report_to)
    plan = plan_train(settings, QUICKSTART)
    session = Session.for_settings(settings, Output(json_mode=True), trackers=True)
    session.runtime = ReplayedTrainStage()
    session.run(plan.pipeline())
    return plan, RunHistory(tmp_path / "out").get(plan.spec.run_id)


@pytest.fixture
def tracker_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKPROPAGATE_MODEL__NAME", "Qwen/Qwen2.5-0.5B-Instruct")  # a hub id: nothing is loaded
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no W&B login, no MLflow or W&B settings of the developer
    for variable in ("WANDB_API_KEY", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(variable, raising=False)


def test_tensorboard_gets_the_run_config_step_metrics_artifacts_and_status(tmp_path, tracker_env, capsys):
    plan, row = train_with_trackers(tmp_path, "tensorboard")
    run = tensorboard_run(plan.folder.root / "tensorboard")
    assert run["scalars"]["train/loss"] == [(1, 2.5), (2, 2.0), (3, 1.5)]
    assert [value for _, value in run["scalars"]["train/grad_norm"]] == pytest.approx(GRAD_NORMS)
    assert [step for step, _ in run["scalars"]["train/learning_rate"]] == [1, 2, 3]
    assert run["scalars"]["train/tokens_per_s"][0] == (1, 1001.0)
    assert run["scalars"]["eval/loss"] == [(0, 2.75), (3, 1.25)]
    assert run["texts"]["run_id"] == [plan.spec.run_id]
    config = json.loads(run["texts"]["config"][0].strip("`\njson"))
    assert config["training"]["learning_rate"] == plan.spec.training.learning_rate
    assert config["data"]["sha256"] == plan.spec.data.sha256
    assert run["texts"]["artifact/adapter"] == [f"{plan.spec.run_dir}/adapter sha256 {ADAPTER_SHA} (1234 bytes)"]
    assert run["texts"]["status"] == ["finished"]
    assert row.trackers == [{"name": "tensorboard", "logdir": str(plan.folder.root / "tensorboard")}]
    first = json.loads(capsys.readouterr().out.splitlines()[0])  # the run's first event says who receives it
    assert (first["stage"], first["key"]) == ("host", "trackers")
    assert first["value"] == "tensorboard on; mlflow off: not in --report-to; wandb off: not in --report-to"


def test_mlflow_gets_a_run_named_by_the_run_id_with_params_metrics_artifacts_and_status(tmp_path, tracker_env):
    plan, row = train_with_trackers(tmp_path, "mlflow")
    run = mlflow_run(f"sqlite:///{tmp_path}/mlflow.db", plan.spec.run_id)
    assert (run["name"], run["tags"]["backpropagate.run_id"], run["status"]) == (plan.spec.run_id, plan.spec.run_id,
                                                                                   "FINISHED")
    assert run["metrics"]["train/loss"] == [(1, 2.5), (2, 2.0), (3, 1.5)]
    assert [value for _, value in run["metrics"]["train/grad_norm"]] == pytest.approx(GRAD_NORMS)
    assert run["metrics"]["eval/loss"] == [(0, 2.75), (3, 1.25)]
    assert run["params"]["training.learning_rate"] == str(plan.spec.training.learning_rate)
    assert run["params"]["lora.r"] == str(plan.spec.lora.r)
    assert run["params"]["data.sha256"] == plan.spec.data.sha256
    assert run["tags"]["artifact.adapter.sha256"] == ADAPTER_SHA
    assert run["tags"]["backpropagate.status"] == "finished"
    assert [tracker["name"] for tracker in row.trackers] == ["mlflow"]


def test_wandb_offline_gets_a_run_whose_id_and_name_are_the_run_id(tmp_path, tracker_env, capsys):
    plan, row = train_with_trackers(tmp_path, "wandb")
    run = wandb_run(plan.folder.root)
    assert (run["id"], run["name"], run["project"]) == (plan.spec.run_id, plan.spec.run_id, "backpropagate")
    assert run["config"]["training"]["learning_rate"] == plan.spec.training.learning_rate
    assert "resume" not in run["config"]
    steps = [(entry["_step"], entry["train/loss"]) for entry in run["history"] if "train/loss" in entry]
    assert steps == [(1, 2.5), (2, 2.0), (3, 1.5)]
    assert [entry["train/grad_norm"] for entry in run["history"] if "train/grad_norm" in entry] == GRAD_NORMS
    assert run["summary"]["artifact/adapter"]["sha256"] == ADAPTER_SHA
    assert (run["summary"]["status"], run["exit_code"]) == ("finished", 0)
    assert row.trackers[0]["name"] == "wandb" and row.trackers[0]["run"] == plan.spec.run_id
    for line in capsys.readouterr().out.splitlines():  # W&B printed nothing into the JSON events
        json.loads(line)


def test_a_tracker_that_fails_warns_with_a_code_and_the_run_completes(tmp_path, tracker_env, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")  # W&B named, no key: wandb.init refuses at once
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing answers there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    plan, row = train_with_trackers(tmp_path, "tensorboard,mlflow,wandb")
    assert (row.status, row.final_loss) == ("completed", 1.5)
    failed = [warning for warning in row.warnings if warning["code"] == "sink_failed"]
    assert sorted(warning["message"].split(" ")[0] for warning in failed) == ["mlflow", "wandb"]
    assert [tracker["name"] for tracker in row.trackers] == ["tensorboard", "mlflow", "wandb"]
    assert "dropped" in row.trackers[1] and "dropped" in row.trackers[2]
    assert tensorboard_run(plan.folder.root / "tensorboard")["texts"]["status"] == ["finished"]


def _summary(report_to: str, environ: dict) -> str:
    return choose_trackers(report_to, environ).summary


def test_auto_turns_on_each_tracker_that_is_installed_and_configured(tmp_path, monkeypatch):
    bare = {"NETRC": str(tmp_path / "no-netrc")}
    assert _summary("auto", bare) == ("tensorboard on; mlflow off: MLFLOW_TRACKING_URI is not set; wandb off: not "
                                      "logged in (run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline)")
    configured = {**bare, "MLFLOW_TRACKING_URI": "sqlite:///x.db", "WANDB_MODE": "offline"}
    assert _summary("auto", configured) == "tensorboard on; mlflow on; wandb on"
    assert _summary("auto", {**bare, "WANDB_API_KEY": "k" * 40}).endswith("wandb on")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert _summary("auto", {"NETRC": str(netrc)}).endswith("wandb on")
    assert _summary("none", configured) == ("tensorboard off: --report-to none; mlflow off: --report-to none; "
                                            "wandb off: --report-to none")
    assert _summary("wandb", bare) == "tensorboard off: not in --report-to; mlflow off: not in --report-to; wandb on"
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    assert _summary("auto", configured) == ("tensorboard off: tensorboardX is not installed (pip install "
                                            "'backpropagate[tensorboard]'); mlflow on; wandb on")
    assert [type(sink).__name__ for sink in choose_trackers("auto", configured).sinks] == ["MlflowSink", "WandbSink"]
    assert tuple(TRACKERS) == ("tensorboard", "mlflow", "wandb")


def test_a_named_tracker_that_is_not_installed_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(BackpropError) as raised:
        Trainer("Qwen/Qwen2.5-0.5B-Instruct", report_to=["wandb"], output=str(tmp_path)).train(QUICKSTART)
    assert raised.value.render() == (
        "[DEP_TRACKER_NOT_INSTALLED]: --report-to names wandb, but wandb is not installed\n"
        "  fix: pip install 'backpropagate[wandb]', or leave wandb out of --report-to")
    assert list(tmp_path.iterdir()) == []  # no run folder, no history


def test_report_to_refuses_an_unknown_tracker_from_the_flag_and_from_the_environment(tmp_path):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", "Qwen/Qwen2.5-0.5B-Instruct",
                     "--report-to", "tensorboard,comet", "--output", str(tmp_path))
    assert result.returncode == 2
    assert "[CONFIG_VALUE_INVALID]: --report-to='tensorboard,comet' is not valid: unknown tracker 'comet'" \
        in result.stderr
    result = run_cli("train", "--data", str(QUICKSTART), "--model", "Qwen/Qwen2.5-0.5B-Instruct",
                     "--output", str(tmp_path), env={"BACKPROPAGATE_REPORT_TO": "none,wandb"})
    assert result.returncode == 2
    assert "[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_REPORT_TO='none,wandb' is not valid: " \
           "auto and none stand alone" in result.stderr
    assert not (tmp_path / "run_history.json").exists()
