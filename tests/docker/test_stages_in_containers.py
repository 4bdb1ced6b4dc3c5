"""The whole chain in containers on a real engine: train -> merge -> gguf-convert -> verify, through
the `backprop` CLI with --runtime docker; the same train through `docker compose run`; failures,
Ctrl-C and GPU requests that leave no container behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, ctrl_c_as_in_a_terminal
from tests.docker.conftest import DOCKER_SETTINGS, docker_cli, events_of

DATA = ROOT / "examples" / "quickstart.jsonl"


def _owned_by_me(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` that the invoking user does not own."""
    return [str(path) for path in [folder, *folder.rglob("*")] if path.lstat().st_uid != os.getuid()]



@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """One short training run in the train container, shared by the chain's later stages."""
    out = tmp_path_factory.mktemp("docker-out")
    result = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "4", "--device", "cpu",
                        "--max-seq-length", "256", "--output", str(out), "--json")
    return out, result


def test_train_runs_in_its_container_and_writes_files_the_user_owns(trained, client):
    out, result = trained
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])["result"]
    assert final["runtime"] == "docker" and final["steps"] == 4
    events = events_of(result.stdout)
    assert events[0]["stage"] == "host" and events[0]["key"] == "trackers"  # which trackers are on, and why
    assert [e["event"] for e in events if e["stage"] == "train"][0] == "started" and events[-1]["event"] == "finished"
    assert sum(e["event"] == "progress" for e in events) == 4
    adapter = Path(final["adapter"])
    assert (adapter / "adapter_model.safetensors").exists()
    assert _owned_by_me(out) == []
    row = json.loads((out / "run_history.json").read_text())["runs"][0]
    assert row["runtime"] == "docker" and row["status"] == "completed"


def test_export_merges_converts_quantizes_and_verifies_in_containers(trained, no_leftover_containers):
    out, train = trained
    assert train.returncode == 0, train.stderr
    run_id = json.loads(train.stdout.strip().splitlines()[-1])["result"]["run_id"]
    result = docker_cli("export", run_id, "--format", "gguf", "--quantization", "q4_k_m", "--output", str(out),
                        "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.strip().splitlines()[-1])["result"]
    gguf = Path(outputs["gguf"])
    assert gguf.name == "model-q4_k_m.gguf" and gguf.stat().st_size > 0
    check = json.loads((gguf.parent / "verify.json").read_text())[gguf.name]
    assert check["verified"] is True and check["passed"] is True and check["tokenizer_mismatches"] == 0
    assert {e["stage"] for e in events_of(result.stdout)} >= {"merge", "gguf"}
    assert _owned_by_me(out) == []


def test_a_failing_stage_reports_its_coded_error_and_leaves_no_container(tiny_model, tmp_path,
                                                                         no_leftover_containers):
    result = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "3", "--device", "cpu",
                        "--max-seq-length", "256", "--output", str(tmp_path),
                        env={"BACKPROP_FAULTS": json.dumps({"raise_at_step": [2, "boom in the container"]})})
    assert result.returncode != 0
    assert "boom in the container" in result.stderr
    assert json.loads((tmp_path / "run_history.json").read_text())["runs"][0]["status"] == "failed"


def test_ctrl_c_stops_the_container_marks_the_run_interrupted_and_removes_it(tiny_model, tmp_path,
                                                                             no_leftover_containers):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env.update(DOCKER_SETTINGS, BACKPROPAGATE_RUNTIME="docker")
    process = subprocess.Popen([sys.executable, "-m", "backpropagate", "train", "--data", str(DATA), "--model",
                                str(tiny_model), "--steps", "200", "--device", "cpu", "--max-seq-length", "256",
                                "--output", str(tmp_path), "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=ctrl_c_as_in_a_terminal)
    for line in process.stdout:  # wait until training is under way in the container
        if '"event": "progress"' in line or '"event":"progress"' in line:
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    row = json.loads((tmp_path / "run_history.json").read_text())["runs"][0]
    assert row["status"] == "interrupted"


def test_a_gpu_asked_for_on_an_engine_without_one_is_a_coded_error(tiny_model, tmp_path, client,
                                                                   no_leftover_containers):
    from backpropagate.runtimes.gpus import probe

    if probe(client, client.images.list()[0].id) is None:
        pytest.skip("this engine can give containers a GPU")
    result = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "1", "--device", "cuda",
                        "--gpus", "all", "--output", str(tmp_path))
    assert result.returncode == 4
    assert "[DEP_GPU_NOT_AVAILABLE]" in result.stderr and "NVIDIA Container Toolkit" in result.stderr
    assert "Traceback" not in result.stderr and "500 Server Error" not in result.stderr


def test_compose_config_accepts_the_compose_files():
    for files in (["-f", "compose.yaml"], ["-f", "compose.yaml", "-f", "compose.cpu.yaml"]):
        done = subprocess.run(["docker", "compose", *files, "config", "--quiet"], cwd=ROOT, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr


def test_docker_compose_run_train_trains_in_the_workspace(tiny_model, tmp_path, no_leftover_containers):
    workspace = tmp_path / "workspace"
    (workspace / "models").mkdir(parents=True)
    shutil.copytree(tiny_model, workspace / "models" / "tiny")
    shutil.copy(DATA, workspace / "my.jsonl")
    env = {**os.environ, "WORKSPACE": str(workspace), "BACKPROP_UID": str(os.getuid()),
           "BACKPROP_GID": str(os.getgid())}
    done = subprocess.run(["docker", "compose", "-f", "compose.yaml", "-f", "compose.cpu.yaml", "run", "--rm", "-T",
                           "train", "--data", "/workspace/my.jsonl", "--model", "/workspace/models/tiny",
                           "--steps", "2", "--device", "cpu", "--max-seq-length", "256", "--json"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])["result"]
    assert result["steps"] == 2
    history = json.loads((workspace / "output" / "run_history.json").read_text())
    assert history["runs"][0]["status"] == "completed"
    assert _owned_by_me(workspace / "output") == []


def test_the_ca_certificate_of_the_build_is_nowhere_in_the_images(client):
    ca = DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__CA_CERT")
    if not ca:
        pytest.skip("these images were built without --ca-cert")
    from backpropagate.images.recipes import RECIPES, image_ref

    host_lines = {line for line in Path(ca).read_text().splitlines() if len(line) == 64}
    for name in RECIPES:
        ref = image_ref(RECIPES[name], "cpu", DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__BASE_IMAGE", ""))
        bundle = client.containers.run(ref, entrypoint=["cat", "/etc/ssl/certs/ca-certificates.crt"], remove=True,
                                       network_disabled=True).decode()
        only_on_host = sorted(host_lines - set(bundle.splitlines()))
        if not only_on_host:
            pytest.skip("the build's CA certificate is one the base image already trusts")
        listing = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "grep", ref,
                                  "-rlF", only_on_host[0], "/opt", "/etc", "/home", "/tmp", "/run", "/usr/local"],
                                 capture_output=True, text=True)
        assert listing.stdout.strip() == "", f"{ref} holds the build's CA certificate: {listing.stdout}"


def test_a_non_root_user_gets_files_of_their_own_not_roots(tiny_model, no_leftover_containers):
    """Run as root, the ownership check above cannot fail; so run the CLI as uid 1000 in the docker group."""
    import grp

    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user (as a non-root user the check above applies)")
    docker_gid = grp.getgrnam("docker").gr_gid
    home = Path(tempfile.mkdtemp(prefix="backprop-user-"))  # pytest's own tmp folders are root's alone
    home.chmod(0o755)
    try:
        _train_as_uid_1000(home, tiny_model, docker_gid)
    finally:
        shutil.rmtree(home)


def _train_as_uid_1000(home: Path, tiny_model: Path, docker_gid: int) -> None:
    shutil.copytree(tiny_model, home / "model")
    shutil.copy(DATA, home / "my.jsonl")
    for path in [home, *home.rglob("*")]:
        os.chown(path, 1000, docker_gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env.update(DOCKER_SETTINGS, BACKPROPAGATE_RUNTIME="docker", HOME=str(home))
    done = subprocess.run(["setpriv", "--reuid=1000", f"--regid={docker_gid}", "--clear-groups", sys.executable, "-m",
                           "backpropagate", "train", "--data", str(home / "my.jsonl"), "--model", str(home / "model"),
                           "--steps", "1", "--device", "cpu", "--max-seq-length", "128", "--output",
                           str(home / "out")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    written = [home / "out", *(home / "out").rglob("*")]
    assert len(written) > 10
    assert {(path.lstat().st_uid, path.lstat().st_gid) for path in written} == {(1000, docker_gid)}


def test_a_missing_image_is_built_on_first_use_with_its_steps_shown(tiny_model, tmp_path, client,
                                                                     no_leftover_containers):
    """The same base under another name gives other inputs, so another tag: built now, from the layer cache."""
    base = DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__BASE_IMAGE")
    if not base:
        pytest.skip("needs the local base image of scripts/test.sh")
    from backpropagate.images.recipes import RECIPES, image_ref

    alias = "backpropagate-base:first-use-test"
    client.images.get(base).tag(alias)
    ref = image_ref(RECIPES["train"], "cpu", alias)
    assert not client.images.list(name=ref)
    try:
        result = docker_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "1", "--device",
                            "cpu", "--max-seq-length", "128", "--output", str(tmp_path),
                            env={"BACKPROPAGATE_DOCKER__BASE_IMAGE": alias})
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"building {ref}" in result.stderr and "[1/" in result.stderr  # the build's steps, as it goes
        assert client.images.get(ref)
    finally:
        for tag in (ref, alias):
            if client.images.list(name=tag):
                client.images.remove(tag)
