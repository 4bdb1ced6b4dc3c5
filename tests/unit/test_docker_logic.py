"""The Docker runtime's decisions, without an engine: mounts and path mapping (Linux and Windows),
which engine the CLI talks to (DOCKER_HOST, contexts, the Windows pipe), GPU requests, image tags."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from backpropagate import __version__
from backpropagate.contract.errors import BackpropError
from backpropagate.images.recipes import RECIPES, build_plan, image_ref, parent_ref
from backpropagate.ollama.container import OLLAMA_IMAGE
from backpropagate.runtimes.engine import UNIX_SOCKET, WINDOWS_PIPE, engine_url
from backpropagate.runtimes.gpus import GpuChoice, device_requests, parse_gpus, resolve
from backpropagate.runtimes.mounts import PathMap, container_path, mount_source, plan_mounts

ROOT = Path(__file__).resolve().parents[2]


# Mounts and paths

def test_a_stage_gets_its_run_folder_writable_and_the_other_paths_of_its_spec_read_only(tmp_path):
    data = tmp_path / "data" / "my.jsonl"
    data.parent.mkdir()
    data.write_text("{}\n")
    model = tmp_path / "models" / "base"
    model.mkdir(parents=True)
    run_dir = tmp_path / "output" / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "data.jsonl").symlink_to(data)  # the run folder links to the user's file
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"run_dir": str(run_dir), "model": str(model), "hub": "Qwen/Qwen2.5-0.5B",
                                "data": {"path": str(run_dir / "data.jsonl"), "source": str(data)},
                                "missing": str(tmp_path / "nope")}))
    mounts = {m.host: m for m in plan_mounts(spec, str(run_dir))}
    assert set(mounts) == {str(run_dir), str(model), str(data)}
    assert not mounts[str(run_dir)].read_only
    assert mounts[str(model)].read_only and mounts[str(data)].read_only
    assert all(m.source == m.target == m.host for m in mounts.values())  # Linux: the same path inside


def test_a_model_named_through_the_run_folders_link_gets_its_target_mounted_so_the_link_resolves(tmp_path):
    model = tmp_path / "token=hf_PlantedSecretToken1234567890abcd" / "base"
    model.mkdir(parents=True)
    run_dir = tmp_path / "output" / "run1"
    (run_dir / "input").mkdir(parents=True)
    (run_dir / "input" / "model").symlink_to(model)
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"run_dir": str(run_dir), "model": str(run_dir / "input" / "model")}))
    mounts = plan_mounts(spec, str(run_dir))
    assert [(m.host, m.target, m.read_only) for m in mounts] == [(str(model), str(model), True),
                                                                 (str(run_dir), str(run_dir), False)]


def test_the_run_folder_is_mounted_last_so_a_read_only_parent_does_not_hide_it(tmp_path):
    run_dir = tmp_path / "models" / "out" / "run1"
    run_dir.mkdir(parents=True)
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"run_dir": str(run_dir), "model": str(tmp_path / "models")}))
    mounts = plan_mounts(spec, str(run_dir))
    assert [(m.host, m.read_only) for m in mounts] == [(str(tmp_path / "models"), True), (str(run_dir), False)]


def test_windows_paths_become_docker_desktop_mounts_and_container_paths():
    assert container_path(r"C:\Users\me\data.jsonl") == "/host/c/Users/me/data.jsonl"
    assert mount_source(r"C:\Users\me\data.jsonl") == "/run/desktop/mnt/host/c/Users/me/data.jsonl"
    assert mount_source(r"d:/work/out") == "/run/desktop/mnt/host/d/work/out"
    assert container_path("/home/me/data.jsonl") == "/home/me/data.jsonl"


def test_a_windows_spec_is_rewritten_for_the_container_and_its_events_back_for_the_host():
    paths = PathMap([r"C:\Users\me\output\run1", r"C:\Users\me\data.jsonl"])
    spec = {"run_dir": r"C:\Users\me\output\run1", "data": {"path": r"C:\Users\me\data.jsonl"},
            "model": "Qwen/Qwen2.5-0.5B", "steps": 3, "other": r"C:\Users\me\output\run10"}
    inside = paths.to_container(spec)
    assert inside["run_dir"] == "/host/c/Users/me/output/run1"
    assert inside["data"]["path"] == "/host/c/Users/me/data.jsonl"
    assert inside["model"] == "Qwen/Qwen2.5-0.5B" and inside["steps"] == 3
    assert inside["other"] == r"C:\Users\me\output\run10"  # a sibling with a common prefix is not inside
    outputs = {"adapter": "/host/c/Users/me/output/run1/adapter"}
    assert paths.to_host(outputs) == {"adapter": "C:\\Users\\me\\output\\run1\\adapter"}


def test_linux_paths_are_left_alone():
    paths = PathMap(["/home/me/output/run1"])
    spec = {"run_dir": "/home/me/output/run1", "adapter": "/home/me/output/run1/adapter"}
    assert paths.to_container(spec) == spec and paths.to_host(spec) == spec


# Which engine

def test_docker_host_wins():
    assert engine_url({"DOCKER_HOST": "tcp://10.0.0.2:2376", "DOCKER_CONTEXT": "x"}, "linux") == \
        ("tcp://10.0.0.2:2376", "DOCKER_HOST")


def test_the_default_is_the_named_pipe_on_windows_and_the_socket_elsewhere(tmp_path):
    assert engine_url({"USERPROFILE": str(tmp_path)}, "win32") == (WINDOWS_PIPE, "default")
    assert engine_url({"HOME": str(tmp_path)}, "linux") == (UNIX_SOCKET, "default")


def _context(config_dir: Path, name: str, host: str) -> None:
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def test_the_current_docker_context_is_followed_like_the_docker_cli(tmp_path):
    config = tmp_path / ".docker"
    _context(config, "desktop-linux", "unix:///home/me/.docker/desktop/docker.sock")
    (config / "config.json").write_text(json.dumps({"currentContext": "desktop-linux"}))
    assert engine_url({"HOME": str(tmp_path)}, "linux") == \
        ("unix:///home/me/.docker/desktop/docker.sock", "docker context desktop-linux")
    _context(config, "remote", "ssh://me@gpu-box")
    assert engine_url({"HOME": str(tmp_path), "DOCKER_CONTEXT": "remote"}, "linux")[0] == "ssh://me@gpu-box"
    assert engine_url({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "default"}, "win32")[0] == WINDOWS_PIPE


def test_a_context_without_an_endpoint_is_a_coded_error(tmp_path):
    with pytest.raises(BackpropError) as caught:
        engine_url({"HOME": str(tmp_path), "DOCKER_CONTEXT": "gone"}, "linux")
    meta = tmp_path / ".docker" / "contexts" / "meta" / hashlib.sha256(b"gone").hexdigest() / "meta.json"
    assert caught.value.render() == (
        f"[DEP_DOCKER_UNAVAILABLE]: no Docker engine answers (docker context 'gone' has no readable endpoint in "
        f"{meta})\n"
        "  fix: start Docker (Docker Desktop, or `sudo systemctl start docker`), check DOCKER_HOST or "
        "`docker context use`, or pass --runtime local")
    assert caught.value.exit_code == 4


# GPUs

@pytest.mark.parametrize("text, expected", [
    ("all", GpuChoice(count=-1, explicit=True)),
    ("none", GpuChoice()),
    ("2", GpuChoice(count=2, explicit=True)),
    ("0,1", GpuChoice(device_ids=("0", "1"), explicit=True)),
    ("GPU-3f2a9c1e-aaaa", GpuChoice(device_ids=("GPU-3f2a9c1e-aaaa",), explicit=True)),
    ("auto", GpuChoice(count=-1)),
])
def test_gpus_takes_what_docker_run_gpus_takes(text, expected):
    assert parse_gpus(text) == expected


def test_an_unknown_gpus_value_is_a_config_error():
    with pytest.raises(BackpropError) as caught:
        parse_gpus("many")
    assert caught.value.code == "CONFIG_VALUE_INVALID" and caught.value.exit_code == 2


def test_gpu_choices_become_the_sdk_device_requests():
    (every,) = device_requests(parse_gpus("all"))
    assert every["Count"] == -1 and every["Capabilities"] == [["gpu"]]
    (two,) = device_requests(parse_gpus("2"))
    assert two["Count"] == 2
    (named,) = device_requests(parse_gpus("0,1"))
    assert named["DeviceIDs"] == ["0", "1"] and named["Capabilities"] == [["gpu"]]
    assert device_requests(parse_gpus("none")) == []


def test_a_cpu_run_asks_for_no_gpu_and_does_not_probe():
    def probe():
        raise AssertionError("a CPU run must not probe")

    choice, fallback = resolve(parse_gpus("all"), False, probe)
    assert not choice.wants_gpu and fallback is None


def test_auto_uses_the_gpus_when_the_probe_says_they_work_and_announces_running_without_otherwise():
    choice, fallback = resolve(parse_gpus("auto"), True, lambda: None)
    assert choice.count == -1 and fallback is None
    choice, fallback = resolve(parse_gpus("auto"), True, lambda: "could not select device driver")
    assert not choice.wants_gpu
    assert fallback == ("--gpus auto found no GPU Docker can give containers (could not select device driver): "
                        "running without one")


def test_a_gpu_asked_for_where_docker_has_none_says_how_to_fix_it():
    with pytest.raises(BackpropError) as caught:
        resolve(parse_gpus("all"), True, lambda: 'could not select device driver "" with capabilities: [[gpu]]')
    error = caught.value
    assert error.code == "DEP_GPU_NOT_AVAILABLE" and error.exit_code == 4
    assert error.message == ('no CUDA GPU is usable here (Docker cannot give containers a GPU '
                             '(could not select device driver "" with capabilities: [[gpu]]))')
    assert error.fix == ("pass --device cpu (or --gpus none) to run on the CPU; for a GPU install the NVIDIA driver "
                         "and a CUDA build of torch (local runtime), or the NVIDIA Container Toolkit and restart Docker "
                         "(docker runtime)")


# Image tags

def _copy_inputs(root: Path) -> None:
    for part in ("images", "cli", "stages"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")


def test_an_image_tag_names_the_version_variant_and_a_hash_of_every_input(tmp_path):
    _copy_inputs(tmp_path)
    train = RECIPES["train"]
    ref = image_ref(train, "cpu", root=tmp_path)
    assert re.fullmatch(rf"backpropagate/train:{re.escape(__version__)}-cpu-[0-9a-f]{{12}}", ref)
    assert image_ref(train, "cpu", root=tmp_path) == ref  # stable
    assert image_ref(train, "cuda", root=tmp_path) != ref
    assert image_ref(train, "cpu", base_image="my-python:3.11", root=tmp_path) != ref
    lock = tmp_path / "images" / "train" / "requirements-cpu.lock"
    lock.write_text(lock.read_text() + "\n")
    changed_lock = image_ref(train, "cpu", root=tmp_path)
    assert changed_lock != ref
    (tmp_path / "stages" / "backpropagate_stages" / "train" / "loop.py").write_text("# changed\n")
    assert image_ref(train, "cpu", root=tmp_path) != changed_lock
    # another image's inputs do not make this one stale
    merge_before = image_ref(RECIPES["merge"], "cpu", root=tmp_path)
    (tmp_path / "images" / "train" / "Dockerfile").write_text("FROM scratch\n")
    assert image_ref(RECIPES["merge"], "cpu", root=tmp_path) == merge_before


def test_the_ui_image_is_built_from_this_checkouts_train_image_and_goes_stale_with_it(tmp_path):
    _copy_inputs(tmp_path)
    ui, train = RECIPES["ui"], RECIPES["train"]
    assert parent_ref(ui, "cpu", root=tmp_path) == image_ref(train, "cpu", root=tmp_path)
    before = image_ref(ui, "cpu", root=tmp_path)
    assert re.fullmatch(rf"backpropagate/ui:{re.escape(__version__)}-cpu-[0-9a-f]{{12}}", before)
    lock = tmp_path / "images" / "train" / "requirements-cpu.lock"
    lock.write_text(lock.read_text() + "\n")
    assert image_ref(ui, "cpu", root=tmp_path) != before


def test_building_the_ui_image_builds_its_parent_first_and_each_image_once():
    ui, train, merge = RECIPES["ui"], RECIPES["train"], RECIPES["merge"]
    assert build_plan([ui], "cpu") == [(train, "cpu"), (ui, "cpu")]
    assert build_plan([train, merge, ui], "cpu") == [(train, "cpu"), (merge, "cpu"), (ui, "cpu")]
    # the ui image exists for the CPU only, and so is the train image it is built FROM
    assert build_plan([train, ui], "cuda") == [(train, "cuda"), (train, "cpu"), (ui, "cpu")]


def test_every_image_pins_its_base_by_digest_and_installs_only_hashed_requirements():
    for recipe in RECIPES.values():
        dockerfile = (ROOT / "images" / recipe.name / "Dockerfile").read_text()
        if recipe.parent:  # FROM the exact tag of its parent, whose base is pinned and which sets HOME and HF_HOME
            assert "ARG PARENT_IMAGE=" in dockerfile and "FROM ${PARENT_IMAGE}" in dockerfile
        else:
            assert re.search(r"ARG BASE_IMAGE=\S+@sha256:[0-9a-f]{64}", dockerfile)
            assert "HF_HOME=" in dockerfile and "HOME=" in dockerfile
        assert "--require-hashes" in dockerfile and "USER backprop" in dockerfile
        for lock in recipe.locks.values():
            lines = (ROOT / "images" / recipe.name / lock).read_text().splitlines()
            pins = [line for line in lines if re.match(r"^[A-Za-z0-9]", line)]
            assert pins and all("==" in line for line in pins)
            assert all("--hash=sha256:" in "".join(lines[i:i + 2]) for i, line in enumerate(lines) if line in pins)


def test_compose_names_this_versions_images_and_the_pinned_ollama():
    compose = (ROOT / "compose.yaml").read_text()
    for name in ("train", "merge", "gguf-convert", "ui"):
        assert f"image: backpropagate/{name}:{__version__}-" in compose
    assert f"image: {OLLAMA_IMAGE}" in compose
    assert f"image: backpropagate/train:{__version__}-cpu" in (ROOT / "compose.cpu.yaml").read_text()
