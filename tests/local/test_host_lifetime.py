"""A stage lives as long as its host: kill -9 of the host alone, SIGTERM and SIGHUP each end the stage in time,
and a resume (or the export run again) then collides with nothing and finishes.

The host is the real CLI, leading its own process group so that only it is signalled (never the stage's
group, as a power cut would); the stage is the real one on the tiny model, found by its command line in
/proc. BACKPROP_FAULTS' ``hang`` stands for a stage stuck where it hears no signal (a looping chat
template, a C call): it ignores SIGINT and SIGTERM and never returns.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backpropagate.contract.history import RunHistory

from tests.conftest import run_cli
from tests.local.test_power_cut import cli_env, partials
from tests.local.test_resilience import COMMON, chat_data, named, resume  # noqa: F401  (chat_data is a fixture)

GONE_WITHIN_S = 5
pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds stages through /proc")


def start_host(tmp_path, *args, faults=None, env=None):
    """The CLI as a user's shell starts it, in a process group of its own; its output goes to files."""
    out, err = (open(tmp_path / name, "w") for name in ("host.out", "host.err"))
    process = subprocess.Popen([sys.executable, "-m", "backpropagate", *args, "--json"], stdout=out, stderr=err,
                               env={**cli_env(faults), **(env or {})}, start_new_session=True)
    process.out, process.err = tmp_path / "host.out", tmp_path / "host.err"
    return process


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def host_run_id(host):
    wait_for(lambda: host.out.read_text().strip(), 120, "the host to start a run")
    return json.loads(host.out.read_text().splitlines()[0])["run_id"]


def stage_processes(run_dir):
    """Processes whose command line names the run folder: its stage and what the stage started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(run_dir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile
                pass
    return found


def events_of(run_dir):
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stuck_in_step_3(run_dir):
    """The stage saved step 2's checkpoint and went on into step 3, where the ``hang`` fault holds it."""
    return any(e["event"] == "checkpoint" and e.get("step") == 2 for e in events_of(run_dir))


def seconds_until_gone(run_dir):
    started = time.monotonic()
    wait_for(lambda: not stage_processes(run_dir), GONE_WITHIN_S, "the stage to end with its host")
    return time.monotonic() - started


@pytest.fixture
def leftovers():
    """Stages a failing test leaves (the code before this change let them run on): killed at the end."""
    run_dirs = []
    yield run_dirs
    for run_dir in run_dirs:
        for pid in stage_processes(run_dir):
            os.kill(pid, signal.SIGKILL)


def train_host(tiny_model, chat_data, tmp_path, **options):
    return start_host(tmp_path, "train", "--data", str(chat_data), "--model", str(tiny_model), "--output",
                      str(tmp_path), "--steps", "8", *COMMON, **options)


def test_kill_9_of_the_host_alone_mid_step_ends_the_stage_and_resume_finishes(tiny_model, chat_data, tmp_path,
                                                                               leftovers):
    host = train_host(tiny_model, chat_data, tmp_path, faults={"hang": "step:3"})
    run_dir = tmp_path / host_run_id(host)
    leftovers.append(run_dir)
    wait_for(lambda: stuck_in_step_3(run_dir), 120, "step 3")
    assert stage_processes(run_dir)
    os.kill(host.pid, signal.SIGKILL)  # the host alone: the stage's group is not touched
    host.wait(timeout=10)
    seconds_until_gone(run_dir)

    listed = json.loads(run_cli("list-runs", "--output", str(tmp_path), "--json").stdout)
    assert [row["status"] for row in listed["result"]["runs"]] == ["dead"]
    resumed, resumed_events = resume(tmp_path, run_dir.name)
    assert resumed.returncode == 0, resumed.stderr
    assert named(resumed_events, "resumed")[0].reason == "from checkpoint step-2"
    assert RunHistory(tmp_path).get(run_dir.name).status == "completed"
    assert partials(tmp_path) == []


def test_sigterm_to_the_host_stops_like_ctrl_c_and_a_deaf_stage_is_killed_after_the_grace(
        tiny_model, chat_data, tmp_path, leftovers):
    host = train_host(tiny_model, chat_data, tmp_path, faults={"hang": "step:3"},
                      env={"BACKPROPAGATE_STOP_GRACE_S": "2"})
    run_id = host_run_id(host)
    leftovers.append(tmp_path / run_id)
    wait_for(lambda: stuck_in_step_3(tmp_path / run_id), 120, "step 3")
    host.send_signal(signal.SIGTERM)
    assert host.wait(timeout=2 + GONE_WITHIN_S) == 130
    assert stage_processes(tmp_path / run_id) == []
    assert host.err.read_text().strip().splitlines()[-2:] == [
        f"[RUNTIME_INTERRUPTED]: run {run_id} was interrupted",
        f"  fix: continue it from its last checkpoint with `backprop resume {run_id}`"]
    killed = [e for e in events_of(tmp_path / run_id) if e.get("code") == "stage_killed"]
    assert killed and killed[0]["message"] == ("the train stage did not stop within 2 s of the stop request and "
                                               "was killed")
    assert RunHistory(tmp_path).get(run_id).status == "interrupted"

    resumed, _ = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert partials(tmp_path) == []


def test_sighup_of_the_host_a_closed_terminal_stops_the_stage_after_its_step(tiny_model, chat_data, tmp_path,
                                                                              leftovers):
    host = train_host(tiny_model, chat_data, tmp_path)
    run_id = host_run_id(host)
    leftovers.append(tmp_path / run_id)
    wait_for(lambda: any(e["event"] == "progress" for e in events_of(tmp_path / run_id)), 120, "a first step")
    host.send_signal(signal.SIGHUP)
    assert host.wait(timeout=30) == 130, host.err.read_text()
    seconds_until_gone(tmp_path / run_id)
    assert host.err.read_text().strip().splitlines()[-1] == (
        f"  fix: continue it from its last checkpoint with `backprop resume {run_id}`")
    assert RunHistory(tmp_path).get(run_id).status == "interrupted"
    resumed, _ = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr


def test_kill_9_of_the_host_alone_mid_gguf_export_ends_the_stage_and_its_converter(tiny_model, chat_data, tmp_path,
                                                                                   leftovers):
    trained = run_cli("train", "--data", str(chat_data), "--model", str(tiny_model), "--output", str(tmp_path),
                      "--steps", "1", *COMMON, "--json")
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / json.loads(trained.stdout.splitlines()[0])["run_id"]
    leftovers.append(run_dir)
    export = ("export", run_dir.name[:8], "--format", "gguf", "--quantization", "q8_0", "--no-verify",
              "--output", str(tmp_path))
    host = start_host(tmp_path, *export)
    converting = run_dir / "gguf.partial"
    wait_for(lambda: any(p.stat().st_size for p in converting.glob("*")) if converting.exists() else False, 300,
             "the converter to write")
    os.kill(host.pid, signal.SIGKILL)
    host.wait(timeout=10)
    seconds_until_gone(run_dir)
    assert not (run_dir / "gguf").exists()  # stopped, not finished by a stage left to run on

    again = run_cli(*export)
    assert again.returncode == 0, again.stderr
    assert partials(tmp_path) == []
    assert sorted(p.name for p in (run_dir / "gguf").iterdir()) == ["model-q8_0.gguf"]
