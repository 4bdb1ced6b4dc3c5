"""Files a user names (show-run --plot, export-runs --out) and the workspace's own: only regular files are written.

Each refusal goes through the real CLI: the coded error and its fix, no traceback, and the thing in the way
left exactly as it was. Devices are made with mknod in the test's folder when the test runs as root (as
here and in CI), so the machine's own /dev/full and /dev/null are never at stake; without root, the real
ones are used, which a user could not replace anyway.
"""

import json
import os
import socket
import stat

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text

from tests.conftest import run_cli

DEVICES = {"full": (1, 7), "null": (1, 3)}  # Linux's major, minor numbers of /dev/full and /dev/null


@pytest.fixture
def workspace(tmp_path):
    """A workspace with one finished run of three steps, enough for show-run to draw."""
    output = tmp_path / "output"
    (output / "3f2a").mkdir(parents=True)
    (output / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": "3f2a", "status": "completed", "run_dir": str(output / "3f2a")}]}))
    events = [{"v": 1, "ts": 0, "run_id": "3f2a", "stage": "train", "event": "progress", "step": step, "total": 3,
               "loss": 2.0 / step, "lr": 1e-4} for step in (1, 2, 3)]
    (output / "3f2a" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return output


def device(tmp_path, name):
    """A character device like /dev/<name>: a node of our own as root, else the system's (which we cannot harm)."""
    if os.geteuid() != 0:
        return f"/dev/{name}"
    path = tmp_path / f"dev-{name}"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*DEVICES[name]))
    return str(path)


def identity(path):
    info = os.lstat(path)
    return info.st_mode, info.st_ino, info.st_rdev


def refused(result):
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr.strip().splitlines()


@pytest.mark.parametrize("name", ["full", "null"])
def test_show_run_plot_to_a_device_is_refused_and_the_device_untouched(workspace, tmp_path, name):
    target = device(tmp_path, name)
    before = identity(target)
    result = run_cli("show-run", "3f2a", "--plot", target, "--output", str(workspace))
    assert refused(result) == (2, [
        f"[CONFIG_OUTPUT_NOT_A_FILE]: --plot {target} is not written: it is a character device, not a regular file",
        "  fix: name a regular file with --plot (a new name, or a file to replace); devices, pipes, sockets and "
        "folders are never written over"])
    assert identity(target) == before
    assert [p.name for p in os.scandir(os.path.dirname(target)) if p.name.startswith(f".{name}")] == []


def test_show_run_plot_through_a_symlink_to_a_device_is_refused(workspace, tmp_path):
    target = device(tmp_path, "full")
    link = tmp_path / "loss.png"
    link.symlink_to(target)
    result = run_cli("show-run", "3f2a", "--plot", str(link), "--output", str(workspace))
    assert refused(result)[0] == 2
    assert result.stderr.startswith(f"[CONFIG_OUTPUT_NOT_A_FILE]: --plot {link} is not written: it is a character "
                                    "device")
    assert link.is_symlink() and identity(target) == identity(os.path.realpath(link))


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder"])
def test_show_run_plot_over_a_pipe_a_socket_or_a_folder_is_refused_in_time(workspace, tmp_path, kind):
    target = tmp_path / f"loss-{kind}"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
    before = identity(target)
    result = run_cli("show-run", "3f2a", "--plot", str(target), "--output", str(workspace), timeout=60)
    words = {"fifo": "a named pipe (FIFO)", "socket": "a socket", "folder": "a folder"}[kind]
    assert refused(result)[1][0] == (f"[CONFIG_OUTPUT_NOT_A_FILE]: --plot {target} is not written: it is {words}, "
                                     "not a regular file")
    assert identity(target) == before


def test_show_run_plot_into_a_missing_folder_is_refused_and_creates_nothing(workspace, tmp_path):
    target = tmp_path / "plots" / "deep" / "loss.png"
    result = run_cli("show-run", "3f2a", "--plot", str(target), "--output", str(workspace))
    assert refused(result) == (2, [
        f"[CONFIG_OUTPUT_FOLDER_MISSING]: --plot {target} is not written: its folder {target.parent} does not exist",
        f"  fix: create {target.parent} first, or name a file in a folder that exists with --plot"])
    assert not (tmp_path / "plots").exists()


def test_show_run_plot_replaces_a_regular_file_whole_and_leaves_no_scratch(workspace, tmp_path):
    target = tmp_path / "loss.png"
    target.write_text("an older plot")
    result = run_cli("show-run", "3f2a", "--plot", str(target), "--output", str(workspace))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "output"]


def test_export_runs_out_to_a_fifo_is_refused_and_the_fifo_kept(workspace, tmp_path):
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    result = run_cli("export-runs", "--format", "csv", "--out", str(fifo), "--output", str(workspace), timeout=60)
    assert refused(result)[1][0] == (f"[CONFIG_OUTPUT_NOT_A_FILE]: --out {fifo} is not written: it is a named pipe "
                                     "(FIFO), not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_runs_out_into_a_missing_folder_is_refused(workspace, tmp_path):
    result = run_cli("export-runs", "--out", str(tmp_path / "new" / "runs.jsonl"), "--output", str(workspace))
    assert refused(result)[1][0].startswith("[CONFIG_OUTPUT_FOLDER_MISSING]: --out ")
    assert not (tmp_path / "new").exists()


def test_a_workspace_file_that_is_a_symlink_to_a_device_is_never_written_through(tmp_path):
    target = device(tmp_path, "null")
    before = identity(target)
    spec = tmp_path / "run" / "spec.json"
    spec.parent.mkdir()
    spec.symlink_to(target)
    with pytest.raises(BackpropError) as caught:
        atomic_write_text(spec, "{}\n")
    assert caught.value.code == "STATE_PATH_NOT_A_FILE" and caught.value.exit_code == 6
    assert caught.value.message == f"{spec} is in the workspace but is not written over: it is a symlink"
    assert caught.value.fix == (f"move {spec} out of the way (the workspace holds only regular files there), then "
                                "run the command again")
    assert spec.is_symlink() and identity(target) == before
    assert [p.name for p in spec.parent.iterdir()] == ["spec.json"]  # no scratch file left
