"""`--runtime ray`: the train stage as the workers of Ray Train's TorchTrainer, on a real Ray cluster.

The module starts one Ray cluster on this machine (2 CPUs, bound to 127.0.0.1) and runs `backprop`
against it as any user would, with `--ray-address`. Two Ray workers must give the one-worker run's
losses and adapter (the global batch of a step does not depend on the workers); a worker killed
with `kill -9` mid-run is restarted by Ray, and the run ends with the adapter of a run never killed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch
from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory

from tests.conftest import cli_env, ctrl_c_as_in_a_terminal, run_cli
from tests.local import test_resilience as resilience
from tests.local.test_data_parallel import LONG, LONG_STEPS, trained
from tests.local.test_resilience import chat_data  # noqa: F401  (fixture)

# The state tolerance held against the one-worker adapter (the torchrun test holds the same).
RTOL, ATOL = 1e-4, 1e-6


@pytest.fixture(scope="module")
def ray_address():
    """A Ray cluster on this machine for the module: started once, by a process that holds it until the end.

    It has Ray's default token authentication; a driver given an explicit address uses the token (in ~/.ray) only
    when told to, as a user of such a cluster does: RAY_AUTH_MODE=token, set here for every `backprop` the module
    runs."""
    script = ("import sys, ray\n"
              "context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1')\n"
              "print(context.address_info['gcs_address'], flush=True)\n"
              "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    port = holder.stdout.readline().strip().rpartition(":")[2]
    assert port, "the Ray cluster did not start"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "token")
        yield f"127.0.0.1:{port}"
    holder.stdin.close()  # its driver ends, and the cluster it started with it
    holder.wait(timeout=60)


def on_ray(address, *flags):
    return ("--runtime", "ray", "--ray-address", address, "--workers", "2", *flags)


@pytest.fixture(scope="module")
def one_local_worker(tiny_model, chat_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("one")
    _, events = trained(tiny_model, chat_data, output)
    return output, events


@pytest.fixture(scope="module")
def two_ray_workers(tiny_model, chat_data, tmp_path_factory, ray_address):
    output = tmp_path_factory.mktemp("ray")
    result, events = trained(tiny_model, chat_data, output, *on_ray(ray_address, "--report-to", "tensorboard"))
    return output, events, result


def test_two_ray_workers_give_the_loss_curve_and_adapter_of_one_local_worker(one_local_worker, two_ray_workers):
    one_output, one_events = one_local_worker
    two_output, two_events, _ = two_ray_workers

    one_losses, two_losses = resilience.losses(one_events), resilience.losses(two_events)
    assert list(two_losses) == list(range(1, LONG_STEPS + 1))  # rank 0 alone speaks: one progress event a step
    assert list(two_losses.values()) == pytest.approx(list(one_losses.values()), rel=1e-4)
    assert [m.value for m in resilience.named(two_events, "metric") if m.key == "workers"] == [2]
    ours = resilience.adapter_weights(two_output, two_events[0].run_id)
    reference = resilience.adapter_weights(one_output, one_events[0].run_id)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=RTOL, atol=ATOL)


def test_a_ray_run_is_one_history_row_with_its_runtime_and_workers_and_shows_in_list_runs_and_show_run(
        two_ray_workers):
    output, events, _ = two_ray_workers
    run_id = events[0].run_id
    [row] = RunHistory(output).rows()
    assert (row.run_id, row.status, row.runtime, row.workers, row.restarts) == (run_id, "completed", "ray", 2, [])
    assert sorted(p.name for p in (output / run_id / "checkpoints").iterdir()) == ["step-10", "step-20"]

    listed = run_cli("list-runs", "--output", str(output), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["runtime"], r["workers"]) for r in json.loads(listed.stdout)["result"]["runs"]] == [
        (run_id, "ray", 2)]
    shown = run_cli("show-run", run_id[:8], "--output", str(output), "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)["result"]
    assert (run["row"]["runtime"], run["row"]["workers"], run["row"]["status"]) == ("ray", 2, "completed")
    assert [loss for _, loss in run["losses"]] == list(resilience.losses(events).values())
    assert "  workers         2" in run_cli("show-run", run_id[:8], "--output", str(output)).stdout


def test_a_ray_run_reaches_its_tracker_and_the_web_ui_like_any_run(two_ray_workers):
    """The trackers and the UI read the events the host got from rank 0: one tracker run, one curve."""
    from starlette.testclient import TestClient

    from backpropagate.ui.app import UiConfig, create_app
    from backpropagate.ui.sandbox import Sandbox
    from tests.unit.tracker_readback import tensorboard_run

    output, events, _ = two_ray_workers
    run_id = events[0].run_id
    losses = resilience.losses(events)
    board = tensorboard_run(output / run_id / "tensorboard")
    assert [(step, round(value, 4)) for step, value in board["scalars"]["train/loss"]] == \
        [(step, round(loss, 4)) for step, loss in losses.items()]
    assert board["texts"]["status"] == ["finished"]
    assert [tracker["name"] for tracker in RunHistory(output).get(run_id).trackers] == ["tensorboard"]

    ui = TestClient(create_app(UiConfig(sandbox=Sandbox(output), credentials=None)))
    assert f'href="/runs/{run_id}"' in ui.get("/").text
    page = ui.get(f"/runs/{run_id}").text
    assert "runtime ray" in page and '<span id="status" class="status-completed">completed</span>' in page
    points = json.loads(page.split('<script type="application/json" id="points">')[1].split("</script>")[0])
    assert [(p["step"], p["loss"]) for p in points] == list(losses.items())


def test_a_ray_worker_killed_mid_run_is_restarted_from_the_last_checkpoint_and_ends_like_the_run_never_killed(
        tiny_model, chat_data, tmp_path, ray_address, two_ray_workers):
    host = subprocess.Popen([sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model",
                             str(tiny_model), "--output", str(tmp_path), *LONG, *on_ray(ray_address)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    seen = [parse_line(host.stdout.readline())]
    run_id = seen[0].run_id
    while seen[-1].event.name != "progress":  # both ranks train: rank 1's worker can be found
        seen.append(parse_line(host.stdout.readline()))
    killed = _ray_worker_of_rank(1)
    # The checkpoint's folder, not its event: events reach the host through the channel, a step or ten late.
    first_checkpoint = tmp_path / run_id / "checkpoints" / "step-10"
    while not first_checkpoint.exists():
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    rest, stderr = host.communicate(timeout=300)
    assert host.returncode == 0, stderr
    events = seen + [parse_line(line) for line in rest.splitlines() if '"event"' in line]

    restarts = [w for w in resilience.named(events, "warning") if w.code == "workers_restarted"]
    assert len(restarts) == 1 and "restart 1 of at most 1" in restarts[0].message
    # The newest checkpoint when the worker died: step 10's, or step 20's where a loaded machine ran ten steps on
    # between the folder appearing and the kill.
    [resumed] = [r.reason for r in resilience.named(events, "resumed")]
    assert resumed in ("from checkpoint step-10", "from checkpoint step-20")
    resumed_step = int(resumed.rpartition("-")[2])
    reference_output, reference_events, _ = two_ray_workers
    ours = resilience.adapter_weights(tmp_path, run_id)
    reference = resilience.adapter_weights(reference_output, reference_events[0].run_id)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=RTOL, atol=ATOL)
    summary = json.loads(rest.splitlines()[-1])["result"]
    assert summary["losses"][resumed_step:] == pytest.approx(
        list(resilience.losses(reference_events).values())[resumed_step:], rel=1e-4)

    [row] = RunHistory(tmp_path).rows()  # one run, and its restart
    assert (row.run_id, row.status, row.runtime, row.workers) == (run_id, "completed", "ray", 2)
    assert row.restarts == [restarts[0].message]


def _ray_worker_of_rank(rank: int) -> psutil.Process:
    """The Ray worker process (a RayTrainWorker actor) whose stage child is this rank."""
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "backpropagate_stages.train" in process.info["cmdline"] and process.environ().get("RANK") == str(rank):
                return process.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
            continue
    raise AssertionError(f"no stage process of rank {rank}")


def test_a_ray_cluster_that_refuses_the_driver_is_runtime_ray_unreachable(tiny_model, chat_data, tmp_path,
                                                                         ray_address):
    refused = run_cli("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                      *LONG, *on_ray(ray_address), env={"RAY_AUTH_MODE": "disabled"}, timeout=120)
    assert refused.returncode == 5, refused.stderr
    error = json.loads(refused.stdout.splitlines()[-1])["error"]
    assert error["code"] == "RUNTIME_RAY_UNREACHABLE"
    assert error["message"].startswith(f"no Ray cluster answers at {ray_address}: ")
    assert error["fix"] == ("pass --ray-address the address `ray status` shows on the cluster's head (HOST:6379), "
                            "with RAY_AUTH_MODE and the token the cluster uses if it has token authentication; leave "
                            "it out to start a cluster here")


def test_ctrl_c_stops_every_ray_worker_after_the_same_step_and_rank_0_saves_it(tiny_model, chat_data, tmp_path,
                                                                               ray_address):
    process = subprocess.Popen(
        [sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model", str(tiny_model),
         "--output", str(tmp_path), "--json", "--steps", "200", *resilience.COMMON, "--checkpoint-every", "0",
         "--checkpoint-on-interrupt", *on_ray(ray_address)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    for line in process.stdout:
        if '"progress"' in line:
            break
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the host's group
    rest, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    run_id = parse_line(line).run_id
    saved = [parse_line(x).event.step for x in rest.splitlines() if '"checkpoint"' in x]
    last_step = max(parse_line(x).event.step for x in [line, *rest.splitlines()] if '"progress"' in x)
    # one checkpoint, of the step both workers finished
    assert last_step < 200 and saved == [last_step], f"{rest}\n{stderr}"
    assert sorted(p.name for p in (tmp_path / run_id / "checkpoints").iterdir()) == [f"step-{last_step}"]
    assert RunHistory(tmp_path).find(run_id).status == "interrupted"
