"""A stage container lives as long as its host: kill -9 of the host alone stops it within seconds, and the
resume (or the export run again) that follows removes what is left of it, collides with nothing and finishes.

The host is the real CLI in a process group of its own, on a real engine; BACKPROP_FAULTS' ``hang`` holds the
train stage in step 3 where it hears no signal (tests/local/test_host_lifetime.py tells the local story)."""

import json
import os
import signal

from tests.conftest import ROOT
from tests.docker.conftest import DOCKER_SETTINGS, docker_cli
from tests.local.test_host_lifetime import GONE_WITHIN_S, events_of, host_run_id, start_host, stuck_in_step_3, wait_for

DATA = ROOT / "examples" / "quickstart.jsonl"
DOCKER = {**DOCKER_SETTINGS, "BACKPROPAGATE_RUNTIME": "docker"}
TRAIN = ("--steps", "6", "--device", "cpu", "--max-seq-length", "128", "--batch-size", "2",
         "--gradient-accumulation", "2", "--checkpoint-every", "2")


def containers_of(client, run_id, running_only=True):
    return client.containers.list(all=not running_only, filters={"label": f"backpropagate.run_id={run_id}"})


def kill_the_host_alone_and_see_its_container_stop(client, host, run_id):
    assert containers_of(client, run_id)
    os.kill(host.pid, signal.SIGKILL)
    host.wait(timeout=10)
    wait_for(lambda: not containers_of(client, run_id), GONE_WITHIN_S, "the container to stop with its host")


def test_kill_9_of_the_host_alone_stops_the_train_container_and_resume_finishes(tiny_model, tmp_path, client):
    host = start_host(tmp_path, "train", "--data", str(DATA), "--model", str(tiny_model), "--output", str(tmp_path),
                      *TRAIN, faults={"hang": "step:3"}, env=DOCKER)
    run_id = host_run_id(host)
    try:
        wait_for(lambda: stuck_in_step_3(tmp_path / run_id), 300, "step 3")
        kill_the_host_alone_and_see_its_container_stop(client, host, run_id)
    finally:
        for container in containers_of(client, run_id, running_only=False):
            if container.status == "running":  # the code before this change let it run on: do not leave it
                container.remove(force=True)
    resumed = docker_cli("resume", run_id[:8], "--output", str(tmp_path), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert any(e["event"] == "resumed" and e["reason"] == "from checkpoint step-2" for e in events_of(tmp_path / run_id))
    assert containers_of(client, run_id, running_only=False) == []  # the dead host's one is gone too


def test_kill_9_of_the_host_alone_mid_gguf_export_stops_its_container_and_the_export_runs_again(
        tiny_model, tmp_path, client):
    trained = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--output", str(tmp_path),
                         *TRAIN, "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.strip().splitlines()[-1])["result"]["run_id"]
    export = ("export", run_id[:8], "--format", "gguf", "--quantization", "q8_0", "--no-verify", "--output",
              str(tmp_path))
    host = start_host(tmp_path, *export, env=DOCKER)
    converting = tmp_path / run_id / "gguf.partial"
    wait_for(lambda: converting.exists() and any(p.stat().st_size for p in converting.glob("*")), 300,
             "the converter to write")
    kill_the_host_alone_and_see_its_container_stop(client, host, run_id)
    assert not (tmp_path / run_id / "gguf").exists()

    again = docker_cli(*export)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / run_id / "gguf").iterdir()) == ["model-q8_0.gguf"]
    assert containers_of(client, run_id, running_only=False) == []
