"""A full disk anywhere in a run: RUNTIME_DISK_FULL with the fix, older checkpoints intact, nothing partial.

The workspace is a real small filesystem (a tmpfs of a few hundred KB to a few MB, mounted for
the test and unmounted after), so the writes fail where the libraries write: safetensors,
torch.save, JSON, the history. Mounting needs root; elsewhere the tests are skipped, saying so.
"""

import json
import os
import subprocess

import pytest
from backpropagate.contract.history import RunHistory

from tests.conftest import run_cli
from tests.local.test_resilience import chat_data  # noqa: F401  (a fixture)

FLAGS = ("--device", "cpu", "--max-seq-length", "64", "--batch-size", "2", "--gradient-accumulation", "1",
         "--keep-checkpoints", "10")


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk("3m")``: a tmpfs of that size, unmounted when the test ends."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = []

    def mount(size: str):
        folder = tmp_path / f"disk-{size}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def train(model, data, output, *flags):
    return run_cli("train", "--data", str(data), "--model", str(model), "--output", str(output), *FLAGS, *flags)


def everything_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_disk_full(result, path_start, then):
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    assert message.startswith(f"[RUNTIME_DISK_FULL]: no space left on the device while writing {path_start}")
    assert fix.startswith("  fix: free some space (older runs in ") and fix.endswith(f"can go), then {then}")


def only_run(output):
    (run,) = RunHistory(output).rows()
    return run


def test_a_checkpoint_that_does_not_fit_keeps_the_one_before_and_leaves_no_partial(
        tiny_model, chat_data, small_disk):
    disk = small_disk("3m")  # one checkpoint of the tiny model (1.6 MB) fits, the second does not
    result = train(tiny_model, chat_data, disk, "--steps", "6", "--checkpoint-every", "2")
    run = only_run(disk)
    assert_disk_full(result, f"{disk / run.run_id}/checkpoints/step-4.partial", f"`backprop resume {run.run_id}`")
    checkpoints = disk / run.run_id / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]
    from backpropagate_stages.train.checkpoint import verify

    verify(checkpoints / "step-2")  # every file matches its sha256
    assert not [p for p in everything_in(disk) if ".partial" in p or p.endswith(".tmp")]
    assert (run.status, run.error_code) == ("failed", "RUNTIME_DISK_FULL")


def test_a_first_checkpoint_that_does_not_fit_ends_with_disk_full_not_a_stage_failure(
        tiny_model, chat_data, small_disk):
    disk = small_disk("1m")  # less than the first checkpoint needs
    result = train(tiny_model, chat_data, disk, "--steps", "4", "--checkpoint-every", "2")
    run = only_run(disk)
    assert_disk_full(result, f"{disk / run.run_id}/checkpoints/step-2.partial", f"`backprop resume {run.run_id}`")
    assert list((disk / run.run_id / "checkpoints").iterdir()) == []
    assert (run.status, run.error_code) == ("failed", "RUNTIME_DISK_FULL")


def test_a_final_adapter_that_does_not_fit_ends_with_disk_full_and_no_partial(tiny_model, chat_data, small_disk):
    disk = small_disk("400k")  # the run's small files fit, the 530 KB adapter does not
    result = train(tiny_model, chat_data, disk, "--steps", "2", "--checkpoint-every", "0")
    run = only_run(disk)
    assert_disk_full(result, f"{disk / run.run_id}/adapter.partial", f"`backprop resume {run.run_id}`")
    assert not [p for p in everything_in(disk) if ".partial" in p or p.endswith(".tmp")]
    assert (run.status, run.error_code) == ("failed", "RUNTIME_DISK_FULL")


def test_a_disk_too_full_for_the_history_refuses_the_run_and_leaves_no_run_folder(
        tiny_model, chat_data, small_disk):
    disk = small_disk("8k")
    result = train(tiny_model, chat_data, disk, "--steps", "2")
    assert_disk_full(result, str(disk), "run the command again")
    assert RunHistory(disk).rows() == []
    assert [p for p in everything_in(disk) if p != "run_history.json.lock"] == []


def test_a_merge_that_does_not_fit_ends_with_disk_full_and_the_run_stays_exportable(
        tiny_model, chat_data, small_disk):
    disk = small_disk("2m")  # the adapter fits; the merged model (3.4 MB in float16) does not
    trained = train(tiny_model, chat_data, disk, "--steps", "1", "--checkpoint-every", "0", "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    result = run_cli("export", run_id[:8], "--format", "merged", "--output", str(disk))
    assert_disk_full(result, str(disk / run_id), "run the export again")
    assert not [p for p in everything_in(disk) if ".partial" in p or p.endswith(".tmp")]
    assert (disk / run_id / "adapter" / "adapter_model.safetensors").is_file()
    assert only_run(disk).status == "completed"
