"""A power cut: host and stage killed together, so nothing is left alive to mark the run failed.

The host CLI leads its own process group (``start_new_session=True``) and the stage has a
session of its own; BACKPROP_FAULTS' ``power_cut`` SIGKILLs both groups at an exact point
(stages/backpropagate_stages/train/faults.py). What is left is what a power cut leaves: a
history row that says ``running``, a ``.partial`` folder half written, and no process at all.
"""

import json
import os
import subprocess
import sys

import pytest
from backpropagate.contract.history import RunHistory
from backpropagate.runs.ownership import owning

from tests.conftest import run_cli
from tests.local.test_resilience import (  # noqa: F401  (chat_data and uninterrupted are fixtures)
    COMMON,
    STEPS,
    adapter_weights,
    assert_same_as_uninterrupted,
    chat_data,
    losses,
    named,
    resume,
    uninterrupted,
)


def cli_env(faults=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env["BACKPROPAGATE_RUNTIME"] = "local"
    if faults:
        env["BACKPROP_FAULTS"] = json.dumps(faults)
    return env


def power_cut(*args, point):
    """Run a CLI command in its own process group until the injected power cut kills it."""
    process = subprocess.run([sys.executable, "-m", "backpropagate", *args, "--json"], capture_output=True,
                             text=True, env=cli_env({"power_cut": point}), start_new_session=True, timeout=600)
    assert process.returncode == -9, process.stderr  # the host died too: nobody marked the run
    return process


def run_id_of(process):
    return json.loads(process.stdout.splitlines()[0])["run_id"]


def partials(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.partial"))


@pytest.mark.parametrize("point, resumed_from", [("step:5", "step-4"), ("checkpoint:4", "step-2"),
                                                 ("adapter", "step-6")])
def test_after_a_power_cut_the_run_shows_dead_and_resume_ends_like_the_uninterrupted_run(
        tiny_model, chat_data, tmp_path, uninterrupted, point, resumed_from):
    killed = power_cut("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                       "--steps", str(STEPS), *COMMON, point=point)
    run_id = run_id_of(killed)
    assert RunHistory(tmp_path).find(run_id).status == "running"  # what the file says after the cut

    listed = run_cli("list-runs", "--output", str(tmp_path), "--json")
    assert [row["status"] for row in json.loads(listed.stdout)["result"]["runs"]] == ["dead"]
    table = run_cli("list-runs", "--output", str(tmp_path)).stdout
    assert f"{run_id[:8]}  dead" in table and "running" not in table
    shown = run_cli("show-run", run_id[:8], "--output", str(tmp_path)).stdout
    assert shown.splitlines()[:2] == [
        f"run {run_id}  dead",
        f"  its host died while it ran: `backprop resume {run_id}` continues it from its newest valid checkpoint"]

    resumed, resumed_events = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert named(resumed_events, "resumed")[0].reason == f"from checkpoint {resumed_from}"
    assert_same_as_uninterrupted(tmp_path, run_id, resumed, uninterrupted)
    assert partials(tmp_path) == []


def test_a_run_whose_owner_is_alive_is_not_resumed_nor_shown_dead(tiny_model, chat_data, tmp_path):
    killed = power_cut("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                       "--steps", "4", *COMMON, point="step:3")
    run_id = run_id_of(killed)
    run_dir = tmp_path / run_id
    history_before = (tmp_path / "run_history.json").read_text()
    with owning(run_dir, run_id):  # this test process stands for a second host that resumed it first
        refused = run_cli("resume", run_id[:8], "--output", str(tmp_path))
        listed = json.loads(run_cli("list-runs", "--output", str(tmp_path), "--json").stdout)
    assert refused.returncode == 6
    message, fix = refused.stderr.strip().splitlines()
    assert message.startswith(f"[STATE_RUN_IN_USE]: run {run_id} is being run by process {os.getpid()} on ")
    assert fix == (f"  fix: wait for it to end (`backprop show-run {run_id}` shows where it is), "
                   "or stop that process first")
    assert "Traceback" not in refused.stderr
    assert [row["status"] for row in listed["result"]["runs"]] == ["running"]
    assert (tmp_path / "run_history.json").read_text() == history_before


def test_two_resumes_of_the_same_dead_run_started_together_one_runs_one_is_refused(
        tiny_model, chat_data, tmp_path):
    killed = power_cut("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                       "--steps", "4", *COMMON, point="step:3")
    run_id = run_id_of(killed)
    command = [sys.executable, "-m", "backpropagate", "resume", run_id[:8], "--output", str(tmp_path)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
            for _ in range(2)]
    ended = sorted((p.wait(timeout=600), p.stderr.read()) for p in both)
    assert [code for code, _ in ended] == [0, 6], ended
    assert f"[STATE_RUN_IN_USE]: run {run_id} is being run by process " in ended[1][1]
    assert RunHistory(tmp_path).find(run_id).status == "completed"


def test_an_export_killed_mid_merge_works_when_run_again_and_leaves_no_partial(tiny_model, chat_data, tmp_path):
    trained = run_cli("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                      "--steps", "1", *COMMON, "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = run_id_of(trained)
    power_cut("export", run_id[:8], "--format", "merged", "--output", str(tmp_path), point="merge")
    assert partials(tmp_path) == [f"{run_id}/merged.partial"]  # what the cut left

    again = run_cli("export", run_id[:8], "--format", "merged", "--output", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert partials(tmp_path) == []
    assert (tmp_path / run_id / "merged" / "model.safetensors").is_file()


def test_an_export_killed_mid_convert_works_when_run_again_and_leaves_no_partial(tiny_model, chat_data, tmp_path):
    trained = run_cli("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                      "--steps", "1", *COMMON, "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = run_id_of(trained)
    power_cut("export", run_id[:8], "--format", "gguf", "--quantization", "q8_0", "--no-verify",
              "--output", str(tmp_path), point="convert")
    assert partials(tmp_path) == [f"{run_id}/gguf.partial"]  # the converter was writing in it when the cut came
    assert any((tmp_path / run_id / "gguf.partial").iterdir())
    assert not (tmp_path / run_id / "gguf").exists()

    again = run_cli("export", run_id[:8], "--format", "gguf", "--quantization", "q8_0", "--no-verify",
                    "--output", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert partials(tmp_path) == []
    assert (tmp_path / run_id / "gguf" / "model-q8_0.gguf").is_file()
    assert sorted(p.name for p in (tmp_path / run_id / "gguf").iterdir()) == ["model-q8_0.gguf"]
