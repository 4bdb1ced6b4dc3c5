"""What the host chooses or meets on a real engine: fallbacks it announces, and failures it names.

`--runtime auto` exporting in a container a run trained locally, `--gpus auto` on an engine with
no GPU, an image build that fails, and a stage image that cannot start.
"""

import json
import os

import pytest
from backpropagate.contract.errors import BackpropError

from tests.conftest import ROOT, run_cli
from tests.docker.conftest import DOCKER_SETTINGS, docker_cli, events_of

DATA = ROOT / "examples" / "quickstart.jsonl"



@pytest.fixture(scope="module")
def local_run(tiny_model, tmp_path_factory):
    """A run trained with the local runtime, for exports in containers."""
    out = tmp_path_factory.mktemp("local-run")
    result = run_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "1", "--device", "cpu",
                     "--max-seq-length", "128", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout.splitlines()[-1])["result"]["run_id"]


def test_auto_announces_that_it_exports_in_docker_a_run_trained_locally(local_run, no_leftover_containers):
    out, run_id = local_run
    result = docker_cli("export", run_id, "--format", "merged", "--output", str(out), "--json",
                        env={"BACKPROPAGATE_RUNTIME": "auto"})
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [e for e in events_of(result.stdout) if e["event"] == "warning" and e["stage"] == "host"]
    assert [w["message"] for w in warnings] == [
        "--runtime auto: a Docker engine answers, so this export runs on docker; the run was trained on local "
        "(pass --runtime local to export there)"]
    row = json.loads((out / "run_history.json").read_text())["runs"][0]
    assert row["warnings"][0]["code"] == "runtime_differs" and row["merged"].endswith("/merged")
    host_events = [json.loads(line) for line in (out / run_id / "events.jsonl").read_text().splitlines()
                   if '"stage":"host"' in line]
    # the run's own host events: which trackers training reported to, then the export's warning
    assert [e.get("code", e.get("key")) for e in host_events] == ["trackers", "runtime_differs"]


def test_gpus_auto_on_an_engine_without_a_gpu_says_it_runs_without_one(tiny_model, tmp_path, client,
                                                                       no_leftover_containers):
    from backpropagate.runtimes.gpus import probe

    if probe(client, client.images.list()[0].id) is None:
        pytest.skip("this engine can give containers a GPU")
    result = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "1", "--device", "auto",
                        "--gpus", "auto", "--output", str(tmp_path), "--json")
    warnings = [e for e in events_of(result.stdout) if e["event"] == "warning" and e["stage"] == "host"]
    assert warnings[0]["code"] == "gpu_fallback"
    assert warnings[0]["message"].startswith("--gpus auto found no GPU Docker can give containers (")
    # Without a GPU, --device auto trains on the CPU image, and the stage says what that means.
    assert result.returncode == 0, result.stderr
    stage_warnings = [e for e in events_of(result.stdout) if e["event"] == "warning" and e["stage"] == "train"]
    assert stage_warnings[0]["code"] == "cpu_fallback"
    row = json.loads((tmp_path / "run_history.json").read_text())["runs"][0]
    assert row["status"] == "completed" and row["warnings"][0]["code"] == "gpu_fallback"


def test_an_image_build_that_fails_names_the_failing_step_and_keeps_its_log(tmp_path):
    from backpropagate.images.build import build_image
    from backpropagate.images.recipes import RECIPES

    base = DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__BASE_IMAGE")
    if not base:
        pytest.skip("needs the local base image of scripts/test.sh")
    # A checkout whose merge Dockerfile cannot be built: a step that fails, as a broken pin would.
    (tmp_path / "images" / "merge").mkdir(parents=True)
    (tmp_path / "images" / "merge" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo 'ERROR: no matching distribution for torch==0.0.0' && exit 3\n")
    (tmp_path / "images" / "merge" / "requirements.lock").write_text("")
    for package in ("cli", "stages"):
        (tmp_path / package).mkdir()
    with pytest.raises(BackpropError) as caught:
        build_image(tmp_path, RECIPES["merge"], "cpu", lambda line: None, base_image=base)
    error = caught.value
    assert (error.code, error.exit_code) == ("RUNTIME_IMAGE_BUILD_FAILED", 5)
    assert error.message.startswith("building backpropagate/merge:0.1.0-cpu-") and " failed: " in error.message
    assert "no matching distribution for torch==0.0.0" in error.message
    log = error.message.rsplit("(full log: ", 1)[1].rstrip(")")
    assert "exit 3" in open(log, encoding="utf-8").read()
    os.unlink(log)
    assert error.fix == ("read the build output above; behind a TLS-intercepting proxy pass --ca-cert FILE, offline "
                         "pass --wheelhouse DIR, without a registry pass --base-image IMAGE")


def test_a_stage_image_that_cannot_start_is_a_coded_error_and_leaves_no_container(local_run, client,
                                                                                  no_leftover_containers):
    """The bare base image, tagged as the merge image of another build: it has no `python` to start."""
    base = DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__BASE_IMAGE")
    if not base:
        pytest.skip("needs the local base image of scripts/test.sh")
    from backpropagate.images.recipes import RECIPES, image_ref

    out, run_id = local_run
    alias = "backpropagate-base:cannot-start-test"
    client.images.get(base).tag(alias)
    ref = image_ref(RECIPES["merge"], "cpu", alias)
    client.images.get(base).tag(ref)
    try:
        result = docker_cli("export", run_id, "--format", "merged", "--output", str(out),
                            env={"BACKPROPAGATE_DOCKER__BASE_IMAGE": alias})
        assert result.returncode == 5, result.stderr[-2000:]
        first, fix = result.stderr.strip().splitlines()[-2:]
        assert first.startswith("[RUNTIME_CONTAINER_FAILED]: the merge container could not run: ")
        assert "python" in first
        assert fix == ("  fix: check `docker info` and `backprop images ls` (`backprop images build` rebuilds an "
                       "image), then run again with --verbose")
        assert not (out / run_id / "merged.partial").exists()
    finally:
        for tag in (ref, alias):
            if client.images.list(name=tag):
                client.images.remove(tag)


def test_images_ls_and_info_report_the_same_status_for_each_image():
    listed = docker_cli("images", "ls", "--json")
    info = docker_cli("info", "--json")
    assert listed.returncode == 0 and info.returncode == 0, listed.stderr + info.stderr
    from_ls = {f"{row['stage']}:{row['variant']}": row["status"]
               for row in json.loads(listed.stdout.splitlines()[-1])["result"]["images"]}
    assert from_ls == json.loads(info.stdout.splitlines()[-1])["result"]["docker"]["images"]
    assert from_ls["train:cpu"] == from_ls["merge:cpu"] == from_ls["gguf-convert:cpu"] == "present"
