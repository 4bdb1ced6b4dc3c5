"""Where a command writes (--output) and what it reads (--data) when the path is hostile.

Each case through the real CLI: the coded error and its fix, no traceback, and nothing created.
File modes are tested as root too: the child is held to them by dropping the two capabilities that let
root ignore them (setpriv), so these tests run here and in CI, which run as root.
The model is a folder with a config.json only: every check here happens before a model is loaded.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import run_cli

# Root ignores file modes only through these two capabilities; without them it is held to its files' modes.
MODE_OVERRIDES = "-dac_override,-dac_read_search"


def held_to_file_modes():
    """The command prefix that runs the CLI held to file modes: as root, setpriv drops the overriding capabilities."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("as root, file modes are tested by dropping capabilities with setpriv (util-linux), not found")
    return ["setpriv", f"--bounding-set={MODE_OVERRIDES}", f"--inh-caps={MODE_OVERRIDES}"]

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.fixture
def inputs(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    return model, data


def train(inputs, output, prefix=()):
    model, data = inputs
    return run_cli_with(prefix, "train", "--data", str(data), "--model", str(model), "--output", str(output),
                        "--device", "cpu", "--steps", "1")


def run_cli_with(prefix, *args):
    """``run_cli``, with the child started through ``prefix`` (a command that runs the rest, such as setpriv)."""
    if not prefix:
        return run_cli(*args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env["BACKPROPAGATE_RUNTIME"] = "local"
    return subprocess.run([*prefix, sys.executable, "-m", "backpropagate", *args], capture_output=True, text=True,
                          env=env)


def error_lines(result):
    assert "Traceback" not in result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    return message, fix


def test_an_output_that_is_an_existing_file_is_refused_and_left_as_it_was(inputs, tmp_path):
    output = tmp_path / "notes.txt"
    output.write_text("mine\n")
    result = train(inputs, output)
    assert result.returncode == 2
    assert error_lines(result) == (
        f"[CONFIG_OUTPUT_NOT_A_FOLDER]: --output {output} cannot be a workspace folder: {output} is a file",
        f"  fix: pass a folder with --output (one that does not exist yet is created), or move {output} out of "
        "the way")
    assert output.read_text() == "mine\n"


def test_an_output_below_a_file_names_the_file_in_the_way(inputs, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    result = train(inputs, blocker / "runs")
    assert result.returncode == 2
    assert error_lines(result)[0] == (f"[CONFIG_OUTPUT_NOT_A_FOLDER]: --output {blocker / 'runs'} cannot be a "
                                      f"workspace folder: {blocker} is a file")


def test_list_runs_on_an_output_that_is_a_file_is_refused(tmp_path):
    output = tmp_path / "notes.txt"
    output.write_text("mine\n")
    result = run_cli("list-runs", "--output", str(output))
    assert result.returncode == 2
    assert error_lines(result)[0].startswith("[CONFIG_OUTPUT_NOT_A_FOLDER]: ")


def test_an_output_on_a_read_only_mount_is_refused_before_anything_is_written(inputs, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    output = tmp_path / "ro"
    output.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(output)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = train(inputs, output / "runs")
        assert result.returncode == 2
        assert error_lines(result) == (
            f"[CONFIG_OUTPUT_NOT_WRITABLE]: --output {output / 'runs'} cannot be written: it is on a read-only "
            "filesystem",
            "  fix: pass a folder you can write to with --output, or make this one writable (remount a read-only "
            "mount read-write)")
        assert list(output.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(output)], check=False)


def test_an_output_folder_this_user_may_not_write_is_refused(inputs, tmp_path):
    output = tmp_path / "locked"
    output.mkdir(mode=0o500)
    result = train(inputs, output / "runs", prefix=held_to_file_modes())
    assert result.returncode == 2, result.stderr
    assert list(output.iterdir()) == []
    assert error_lines(result)[0] == (f"[CONFIG_OUTPUT_NOT_WRITABLE]: --output {output / 'runs'} cannot be "
                                      f"written: {output} is not writable by this user")


def test_a_dataset_that_is_a_symlink_loop_is_named_as_one(tmp_path):
    loop = tmp_path / "data.jsonl"
    loop.symlink_to(loop)
    result = run_cli("validate", "--data", str(loop))
    assert result.returncode == 3
    assert error_lines(result) == (
        f"[INPUT_DATASET_UNREADABLE]: dataset {loop} cannot be read: it is a symbolic link that leads back to itself",
        "  fix: point the link at the file (ls -l shows where it leads), or pass the file itself to --data")


def test_resuming_an_unknown_run_in_a_new_folder_creates_nothing(tmp_path):
    output = tmp_path / "new"
    result = run_cli("resume", "deadbeef", "--output", str(output))
    assert result.returncode == 3
    assert error_lines(result)[0] == ("[INPUT_RUN_NOT_FOUND]: no run matches 'deadbeef' in "
                                      f"{output.resolve()}/run_history.json")
    assert not output.exists()


def test_a_dataset_this_user_may_not_read_is_an_input_error_with_the_chmod(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    data.chmod(0)
    held = held_to_file_modes()
    result = run_cli_with(held, "validate", "--data", str(data))
    assert result.returncode == 3, result.stderr
    assert error_lines(result) == (
        f"[INPUT_DATASET_UNREADABLE]: dataset {data} cannot be read: this user may not read it",
        f"  fix: make it readable (chmod u+r {data}), or pass a copy you can read")
    os.chmod(data, 0o400)  # what the fix says
    assert run_cli_with(held, "validate", "--data", str(data)).returncode == 0
