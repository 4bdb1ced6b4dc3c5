"""Data-parallel training: `--workers 2` runs the train stage under torchrun (gloo, two CPU processes).

The global batch of a step (--batch-size x --gradient-accumulation) is the same on any number of
workers, so two workers must give the one-worker run's losses and adapter; only rank 0 writes.
"""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import torch
from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory

from tests.conftest import ctrl_c_as_in_a_terminal, run_cli
from tests.local import test_resilience as resilience
from tests.local.test_resilience import chat_data, uninterrupted  # noqa: F401  (fixtures)
from tests.local.test_power_cut import cli_env, partials

LONG_STEPS = 30
# A global batch of 4 rows: 2 per worker, one micro-batch each, the same micro-batches the single worker sees.
LONG = ("--device", "cpu", "--max-seq-length", "64", "--batch-size", "2", "--gradient-accumulation", "2",
        "--checkpoint-every", "10", "--keep-checkpoints", "10", "--learning-rate", "1e-3",
        "--steps", str(LONG_STEPS), "--report-to", "none", "--json")


def trained(model, data, output, *flags):
    result = run_cli("train", "--data", str(data), "--model", str(model), "--output", str(output), *LONG, *flags)
    assert result.returncode == 0, result.stderr
    return result, [parse_line(line) for line in result.stdout.splitlines() if '"event"' in line]


def test_two_workers_give_the_loss_curve_and_adapter_of_one_and_only_rank_0_writes(tiny_model, chat_data, tmp_path):
    one, one_events = trained(tiny_model, chat_data, tmp_path / "one")
    two, two_events = trained(tiny_model, chat_data, tmp_path / "two", "--workers", "2")

    one_losses, two_losses = resilience.losses(one_events), resilience.losses(two_events)
    assert list(two_losses) == list(range(1, LONG_STEPS + 1))  # one progress event per step, not one per rank
    assert list(two_losses.values()) == pytest.approx(list(one_losses.values()), rel=1e-4)
    assert [m.value for m in resilience.named(two_events, "metric") if m.key == "workers"] == [2]
    one_id, two_id = one_events[0].run_id, two_events[0].run_id
    ours = resilience.adapter_weights(tmp_path / "two", two_id)
    reference = resilience.adapter_weights(tmp_path / "one", one_id)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-6)

    run_dir = tmp_path / "two" / two_id
    written = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in written].count("started") == 1
    assert [e["event"] for e in written].count("finished") == 1
    assert [e["step"] for e in written if e["event"] == "progress"] == list(range(1, LONG_STEPS + 1))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-10", "step-20"]
    assert [row.run_id for row in RunHistory(tmp_path / "two").rows()] == [two_id]
    assert json.loads(two.stdout.splitlines()[-1])["result"]["steps"] == LONG_STEPS


def test_host_and_workers_killed_together_then_resume_ends_like_the_uninterrupted_run(
        tiny_model, chat_data, tmp_path, uninterrupted):
    host = subprocess.Popen([sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model",
                             str(tiny_model), "--output", str(tmp_path), "--json", "--steps", str(resilience.STEPS),
                             *resilience.COMMON, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env(),
                            start_new_session=True)
    run_id = None
    for line in host.stdout:
        event = parse_line(line) if '"event"' in line else None
        run_id = run_id or (event and event.run_id)
        if event and event.event.name == "progress" and event.event.step == 5:  # checkpoint step-4 is written
            break
    # kill -9 of every process group: the host's, and the session torchrun and its workers run in.
    everyone = [psutil.Process(host.pid), *psutil.Process(host.pid).children(recursive=True)]
    assert len(everyone) >= 4  # host, torchrun, two workers
    for group in {os.getpgid(process.pid) for process in everyone}:
        os.killpg(group, signal.SIGKILL)
    host.wait(timeout=30)
    assert not psutil.wait_procs(everyone, timeout=30)[1]  # none left alive
    assert RunHistory(tmp_path).find(run_id).status == "running"  # nobody was left to mark it

    resumed, resumed_events = resilience.resume(tmp_path, run_id, env={"BACKPROPAGATE_WORKERS": "2"})
    assert resumed.returncode == 0, resumed.stderr
    assert resilience.named(resumed_events, "resumed")[0].reason == "from checkpoint step-4"
    resilience.assert_same_as_uninterrupted(tmp_path, run_id, resumed, uninterrupted)
    assert partials(tmp_path) == []


def test_ctrl_c_stops_every_worker_after_the_same_step_and_rank_0_saves_it(tiny_model, chat_data, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model", str(tiny_model),
         "--output", str(tmp_path), "--json", "--steps", "100000", *resilience.COMMON, "--checkpoint-every", "0",
         "--checkpoint-on-interrupt", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    for line in process.stdout:
        if '"progress"' in line:
            break
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the host's group, not the stage's
    rest, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    run_id = parse_line(line).run_id
    saved = [parse_line(x).event for x in rest.splitlines() if '"checkpoint"' in x]
    last_step = max(parse_line(x).event.step for x in [line, *rest.splitlines()] if '"progress"' in x)
    assert [checkpoint.step for checkpoint in saved] == [last_step]  # one checkpoint, of the step both finished
    assert sorted(p.name for p in (tmp_path / run_id / "checkpoints").iterdir()) == [f"step-{last_step}"]
    assert RunHistory(tmp_path).find(run_id).status == "interrupted"


def test_a_worker_killed_under_torchrun_ends_the_run_with_runtime_worker_lost(tiny_model, chat_data, tmp_path):
    host = subprocess.Popen([sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model",
                             str(tiny_model), "--output", str(tmp_path), "--json", "--steps", str(resilience.STEPS),
                             *resilience.COMMON, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    for line in host.stdout:
        if '"checkpoint"' in line:
            break
    [rank_1] = [p for p in psutil.Process(host.pid).children(recursive=True)
                if "torch.distributed.run" not in p.cmdline() and p.environ().get("RANK") == "1"]
    rank_1.kill()
    rest, stderr = host.communicate(timeout=120)
    assert host.returncode == 5, stderr
    run_id = parse_line(line).run_id
    error = [parse_line(x).event for x in rest.splitlines() if '"event":"error"' in x]
    assert [e.code for e in error] == ["RUNTIME_WORKER_LOST"]  # not the gloo error rank 0 saw
    assert "rank 1 was ended by SIGKILL" in error[0].message
    assert f"backprop resume {run_id}" in error[0].fix
    row = RunHistory(tmp_path).find(run_id)
    assert (row.status, row.error_code, row.workers) == ("failed", "RUNTIME_WORKER_LOST", 2)
