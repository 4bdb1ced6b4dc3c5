"""Runs that survive: OOM, heat, kill -9, a full disk, Ctrl-C; and secrets that never reach a file.

Faults are injected through BACKPROP_FAULTS (stages/backpropagate_stages/train/faults.py),
the test-only hook; everything else is the real CLI, stage, model and PEFT.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory
from safetensors.torch import load_file

from tests.conftest import ctrl_c_as_in_a_terminal, run_cli

STEPS = 8
COMMON = ("--device", "cpu", "--max-seq-length", "64", "--batch-size", "2", "--gradient-accumulation", "2",
          "--checkpoint-every", "2", "--keep-checkpoints", "10", "--learning-rate", "1e-3")


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory):
    """40 short conversations: enough rows that steps see different data."""
    rng = random.Random(0)
    words = "red blue green cat dog river hill lamp bread stone cloud tower".split()
    path = tmp_path_factory.mktemp("data") / "chat.jsonl"
    rows = []
    for i in range(40):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))
        answer = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        rows.append(json.dumps({"messages": [{"role": "user", "content": f"{i}: {question}?"},
                                             {"role": "assistant", "content": answer}]}))
    path.write_text("\n".join(rows) + "\n")
    return path


def train(model, data, output, *flags, faults=None, env=None):
    extra = dict(env or {})
    if faults is not None:
        extra["BACKPROP_FAULTS"] = json.dumps(faults)
    result = run_cli("train", "--data", str(data), "--model", str(model), "--output", str(output), "--json",
                     "--steps", str(STEPS), *COMMON, *flags, env=extra)
    return result, _events(result)


def resume(output, run_id, env=None):
    result = run_cli("resume", run_id[:8], "--output", str(output), "--json", env=env)
    return result, _events(result)


def _events(result):
    return [parse_line(line) for line in result.stdout.splitlines() if '"event"' in line]


def named(events, name):
    return [e.event for e in events if e.event.name == name]


def losses(events):
    return {e.step: e.loss for e in named(events, "progress")}


def adapter_weights(output, run_id):
    return load_file(output / run_id / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, chat_data, tmp_path_factory):
    """The reference: the same run with nothing going wrong."""
    output = tmp_path_factory.mktemp("reference")
    result, events = train(tiny_model, chat_data, output)
    assert result.returncode == 0, result.stderr
    return output, events[0].run_id, events


KILL_STEPS = random.Random(2026).sample(range(1, STEPS), 5)  # five different steps, the same every run


@pytest.mark.parametrize("kill_step", KILL_STEPS)
def test_kill_9_at_a_random_step_then_resume_ends_like_the_uninterrupted_run(
        tiny_model, chat_data, tmp_path, uninterrupted, kill_step):
    killed, events = train(tiny_model, chat_data, tmp_path, faults={"kill_at_step": kill_step})
    run_id = events[0].run_id
    assert killed.returncode == 5
    assert "exit code -9" in killed.stderr
    assert RunHistory(tmp_path).find(run_id).status == "failed"

    resumed, resumed_events = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr
    last_checkpoint = (kill_step - 1) // 2 * 2  # the kill lands before step k's own checkpoint
    if last_checkpoint:
        assert named(resumed_events, "resumed")[0].reason == f"from checkpoint step-{last_checkpoint}"
    assert min(losses(resumed_events)) == last_checkpoint + 1  # nothing before the checkpoint is redone

    assert_same_as_uninterrupted(tmp_path, run_id, resumed, uninterrupted)


def assert_same_as_uninterrupted(output, run_id, resumed, uninterrupted):
    """The resumed run ends with the losses and adapter of the run never killed, and is completed."""
    reference_output, reference_id, reference_events = uninterrupted
    summary = json.loads(resumed.stdout.splitlines()[-1])["result"]
    assert summary["losses"] == pytest.approx(list(losses(reference_events).values()), abs=1e-5)
    ours, reference = adapter_weights(output, run_id), adapter_weights(reference_output, reference_id)
    assert ours.keys() == reference.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name], atol=1e-5, rtol=1e-4)
    assert RunHistory(output).find(run_id).status == "completed"


def test_resume_refuses_checkpoints_written_under_settings_that_were_changed_since(tiny_model, chat_data, tmp_path):
    killed, events = train(tiny_model, chat_data, tmp_path, faults={"kill_at_step": 5})
    run_id = events[0].run_id
    assert killed.returncode == 5
    spec_path = tmp_path / run_id / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["training"]["learning_rate"] = 5e-3  # edited by hand after the checkpoints were written
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")

    resumed = run_cli("resume", run_id[:8], "--output", str(tmp_path))
    assert resumed.returncode == 6
    message, fix = resumed.stderr.strip().splitlines()[-2:]
    assert message.startswith(f"[STATE_CHECKPOINT_SPEC_CHANGED]: checkpoint {tmp_path / run_id}/checkpoints/step-4 "
                              f"was written with other settings than {spec_path} now holds (spec hash ")
    assert fix == ("  fix: restore the run's spec.json as it was, or start a new run with these settings "
                   f"(`backprop train` or `backprop replay {run_id}`)")
    assert RunHistory(tmp_path).find(run_id).status == "failed"


def test_a_damaged_newest_checkpoint_is_refused_and_the_previous_one_used(tiny_model, chat_data, tmp_path):
    killed, events = train(tiny_model, chat_data, tmp_path, faults={"kill_at_step": 5})
    run_id = events[0].run_id
    state = tmp_path / run_id / "checkpoints" / "step-4" / "training_state.pt"
    state.write_bytes(state.read_bytes()[:-10] + b"0123456789")
    resumed, resumed_events = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr
    refused = [w for w in named(resumed_events, "warning") if w.code == "STATE_CHECKPOINT_INVALID"]
    assert refused and refused[0].message == (
        f"checkpoint {tmp_path / run_id / 'checkpoints' / 'step-4'} is not valid: training_state.pt does not match "
        "its sha256; trying the previous checkpoint")
    # The fix the catalog gives when this is met outside a resume: the previous one is used anyway.
    from backpropagate.contract.errors import CATALOG

    assert CATALOG["STATE_CHECKPOINT_INVALID"].fix == ("delete that checkpoint folder; the previous checkpoint is "
                                                       "used instead")
    assert named(resumed_events, "resumed")[0].reason == "from checkpoint step-2"


def test_three_ooms_are_absorbed_without_changing_the_effective_batch_or_the_steps(
        tiny_model, chat_data, tmp_path):
    flags = ("--batch-size", "8", "--gradient-accumulation", "1", "--lora-dropout", "0")
    clean, clean_events = train(tiny_model, chat_data, tmp_path / "clean", *flags)
    result, events = train(tiny_model, chat_data, tmp_path / "oom", *flags, faults={"oom_at_steps": [2, 3, 5]})
    assert result.returncode == 0, result.stderr
    assert [e.step for e in named(events, "progress")] == list(range(1, STEPS + 1))
    adjustments = [w.message for w in named(events, "warning") if w.code == "oom_recovered"]
    assert adjustments == [
        "out of memory at step 2: micro-batch 4, gradient accumulation 2; same rows per step",
        "out of memory at step 3: micro-batch 2, gradient accumulation 4; same rows per step",
        "out of memory at step 5: micro-batch 1, gradient accumulation 8; same rows per step",
    ]
    # Same rows in every step, so the same losses as the run that never ran out of memory.
    assert list(losses(events).values()) == pytest.approx(list(losses(clean_events).values()), abs=1e-4)
    row = RunHistory(tmp_path / "oom").find(events[0].run_id)
    assert row.oom_adjustments == adjustments


def test_a_fourth_oom_ends_the_run_with_runtime_gpu_oom(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, "--batch-size", "8", "--gradient-accumulation", "1",
                           faults={"oom_at_steps": [2, 3, 4, 5]})
    assert result.returncode == 5
    error = named(events, "error")[0]
    assert (error.code, error.message) == ("RUNTIME_GPU_OOM", "out of GPU memory at step 5")
    assert error.fix == "lower --batch-size or --max-seq-length, or add --qlora"


def test_no_oom_recovery_fails_at_the_first_oom(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, "--no-oom-recovery", faults={"oom_at_steps": [3]})
    assert result.returncode == 5
    assert named(events, "error")[0].code == "RUNTIME_GPU_OOM"


def test_heat_pauses_training_between_steps_and_cooling_resumes_it(tiny_model, chat_data, tmp_path):
    temperatures = [70, 72, 90, 88, 80, 74, 70]
    result, events = train(tiny_model, chat_data, tmp_path, "--thermal-pause-c", "85", "--thermal-resume-c", "75",
                           "--thermal-poll-s", "0.01", faults={"temperatures": temperatures})
    assert result.returncode == 0, result.stderr
    sequence = [(e.event.name, getattr(e.event, "step", None)) for e in events
                if e.event.name in ("paused", "resumed", "progress")]
    paused_at = sequence.index(("paused", None))
    assert sequence[paused_at - 1] == ("progress", 2)  # paused before step 3 started
    assert sequence[paused_at + 1][0] == "resumed" and sequence[paused_at + 2] == ("progress", 3)
    paused = named(events, "paused")
    assert len(paused) == 1 and paused[0].reading["temperature_c"] == 90.0
    assert named(events, "resumed")[0].reason.startswith("gpu_temperature 74.0°C")


def test_a_gpu_that_never_cools_ends_with_temperature_critical(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, "--thermal-timeout-s", "0.05", "--thermal-poll-s",
                           "0.01", faults={"temperatures": [95]})
    assert result.returncode == 5
    assert named(events, "error")[0].code == "RUNTIME_GPU_TEMPERATURE_CRITICAL"


def test_on_the_cpu_the_thermal_guard_says_it_is_off(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, "--steps", "1")
    messages = [w.message for w in named(events, "warning") if w.code == "thermal_guard_off"]
    assert messages == ["thermal guard off: training on the CPU: no GPU temperature to watch"]


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_finishes(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, faults={"disk_full_at_checkpoint": 4})
    run_id = events[0].run_id
    assert result.returncode == 5
    error = named(events, "error")[0]
    assert error.code == "RUNTIME_DISK_FULL"
    assert error.message == ("no space left on the device while writing "
                             f"{tmp_path / run_id / 'checkpoints' / 'step-4.partial'}")
    assert error.fix == f"free some space (older runs in {tmp_path} can go), then `backprop resume {run_id}`"
    checkpoints = tmp_path / run_id / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]

    from backpropagate_stages.train.checkpoint import verify

    verify(checkpoints / "step-2")  # intact: every file matches its sha256
    (checkpoints / "step-6.partial").mkdir()  # as a crash mid-write would leave it
    resumed, resumed_events = resume(tmp_path, run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(checkpoints.glob("*.partial"))
    assert named(resumed_events, "resumed")[0].reason == "from checkpoint step-2"


def test_ctrl_c_finishes_the_step_saves_a_checkpoint_on_request_and_resume_completes(tiny_model, chat_data,
                                                                                      tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env["BACKPROPAGATE_RUNTIME"] = "local"  # the stage itself, not an engine that may answer here
    process = subprocess.Popen(
        [sys.executable, "-m", "backpropagate", "train", "--data", str(chat_data), "--model", str(tiny_model),
         "--output", str(tmp_path), "--json", "--steps", "100000", *COMMON, "--checkpoint-every", "0",
         "--checkpoint-on-interrupt"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    for line in process.stdout:
        if '"progress"' in line:
            break
    os.killpg(process.pid, signal.SIGINT)
    rest, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    run_id = parse_line(line).run_id
    saved = [parse_line(x).event for x in rest.splitlines() if '"checkpoint"' in x]
    assert len(saved) == 1
    last_step = max(parse_line(x).event.step for x in [line, *rest.splitlines()] if '"progress"' in x)
    assert saved[0].step == last_step  # the step in flight was finished, then saved
    assert RunHistory(tmp_path).find(run_id).status == "interrupted"


def test_resuming_a_completed_run_is_refused(tiny_model, chat_data, tmp_path):
    result, events = train(tiny_model, chat_data, tmp_path, "--steps", "1")
    refused, _ = resume(tmp_path, events[0].run_id)
    assert refused.returncode == 6
    assert refused.stderr == (f"[STATE_NOTHING_TO_RESUME]: run {events[0].run_id} is completed; only a failed or "
                              "interrupted run can be resumed\n  fix: start a new run with `backprop train`\n")


def test_the_python_api_resumes_a_run(tiny_model, chat_data, tmp_path):
    from backpropagate import Trainer

    killed, events = train(tiny_model, chat_data, tmp_path, faults={"kill_at_step": 3})
    result = Trainer(output=tmp_path, progress=False).train(resume=events[0].run_id)
    assert result.run_id == events[0].run_id and len(result.loss_history) == STEPS


SECRET = "hf_PlantedSecretToken1234567890abcd"


def test_planted_secrets_appear_in_no_file_the_run_writes(tiny_model, chat_data, tmp_path):
    secret_dir = tmp_path / f"token={SECRET}"
    secret_dir.mkdir()
    data = secret_dir / "chat.jsonl"
    data.write_bytes(chat_data.read_bytes())
    model = secret_dir / "model"
    shutil.copytree(tiny_model, model)
    output = tmp_path / "out"
    result, events = train(model, data, output, "--steps", "3", env={"HF_TOKEN": SECRET},
                           faults={"raise_at_step": [2, f"upload refused for token {SECRET}"]})
    assert result.returncode == 5
    run_dir = output / events[0].run_id
    assert list(losses(events)) == [1]  # the stage loaded the model through the run folder's link and trained
    for path in (run_dir / "log.txt", run_dir / "events.jsonl", run_dir / "spec.json",
                 output / "run_history.json"):
        assert SECRET not in path.read_text(), path
    written = [path for path in run_dir.rglob("*") if path.is_file() and not path.is_symlink()
               and ".partial" not in str(path)]
    assert all(SECRET.encode() not in path.read_bytes() for path in written), written
    assert json.loads((run_dir / "spec.json").read_text())["model"] == str(run_dir / "input" / "model")
    shown = run_cli("show-run", events[0].run_id[:8], "--output", str(output), "--json").stdout
    assert f'"model": "{tmp_path}/token=***"' in shown and SECRET not in shown  # redaction takes the rest
    assert SECRET not in result.stdout + result.stderr
    assert "upload refused for token ***" in named(events, "error")[0].message


def test_flags_given_with_resume_are_reported_as_ignored(tiny_model, chat_data, tmp_path):
    killed, events = train(tiny_model, chat_data, tmp_path, faults={"kill_at_step": 3})
    result = run_cli("train", "--resume", events[0].run_id, "--lora-r", "4", "--data", str(chat_data),
                     "--output", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert ("warning: resuming uses the run's own settings and data; ignored: --lora-r, --data"
            in result.stderr)
    run_dir = tmp_path / events[0].run_id
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 16
