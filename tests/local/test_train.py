"""The train stage, run through the real `backprop` CLI on the tiny model, on the CPU."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from backpropagate.contract.events import parse_line
from backpropagate.contract.files import sha256_file
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, ctrl_c_as_in_a_terminal, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def train(tiny_model, output, *flags, data=QUICKSTART, env=None):
    """`backprop train --json` on the tiny model; returns (result, events)."""
    result = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--device", "cpu",
                     "--output", str(output), "--json", *flags, env=env)
    lines = result.stdout.splitlines()
    events = [parse_line(line) for line in lines if '"event"' in line]
    return result, events


def coded_error(stderr: str) -> list[str]:
    """The error and its fix: the last two lines of stderr, after any progress notes."""
    return stderr.strip().splitlines()[-2:]


def losses(events):
    return [e.event.loss for e in events if e.event.name == "progress"]


def adapter_config(run_dir):
    return json.loads((run_dir / "adapter" / "adapter_config.json").read_text())


def test_thirty_steps_lower_the_loss_and_leave_a_peft_adapter_with_the_requested_shape(tiny_model, tmp_path):
    result, events = train(tiny_model, tmp_path, "--steps", "30", "--lora-r", "8", "--lora-alpha", "16",
                           "--lora-targets", "q_proj,v_proj", "--learning-rate", "1e-3")
    assert result.returncode == 0, result.stderr
    curve = losses(events)
    assert len(curve) == 30
    assert sum(curve[-5:]) / 5 < 0.95 * sum(curve[:5]) / 5
    summary = json.loads(result.stdout.splitlines()[-1])["result"]
    run_dir = tmp_path / summary["run_id"]
    assert summary["adapter"] == str(run_dir / "adapter")

    config = adapter_config(run_dir)
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run_dir / "adapter")
    assert any("lora_A" in name for name, _ in model.named_parameters())

    manifest = json.loads((run_dir / "manifest.json").read_text())
    artifact = manifest["artifacts"][0]
    assert artifact["sha256"] == sha256_file(run_dir / artifact["path"])
    row = RunHistory(tmp_path).find(summary["run_id"])
    assert row.status == "completed" and row.final_loss == pytest.approx(curve[-1])
    assert all(e.run_id == summary["run_id"] for e in events)


@pytest.mark.parametrize("preset, rank, targets", [
    ("fast", 16, {"q_proj", "v_proj"}),
    ("quality", 256, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
])
def test_lora_presets_change_the_adapter(tiny_model, tmp_path, preset, rank, targets):
    result, events = train(tiny_model, tmp_path, "--steps", "1", "--lora-preset", preset)
    assert result.returncode == 0, result.stderr
    run_id = events[0].run_id
    config = adapter_config(tmp_path / run_id)
    assert config["r"] == rank
    assert {name.rsplit(".", 1)[-1] for name in config["target_modules"]} == targets


def test_environment_settings_reach_the_adapter_and_the_log(tiny_model, tmp_path):
    result, events = train(tiny_model, tmp_path, "--steps", "1",
                           env={"BACKPROPAGATE_LORA__R": "4", "BACKPROPAGATE_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / events[0].run_id
    assert adapter_config(run_dir)["r"] == 4
    assert " DEBUG " in (run_dir / "log.txt").read_text()


def test_a_run_logged_to_a_file_prints_one_progress_line_per_step(tiny_model, tmp_path):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--device", "cpu",
                     "--steps", "3", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stderr.splitlines() if line.startswith("train step ")]
    assert [line.split()[2] for line in steps] == ["1/3", "2/3", "3/3"]
    assert all(" loss " in line and " tok/s" in line for line in steps)


def test_seeded_runs_repeat_exactly_and_another_seed_differs(tiny_model, tmp_path):
    first = losses(train(tiny_model, tmp_path / "a", "--steps", "4", "--seed", "7")[1])
    again = losses(train(tiny_model, tmp_path / "b", "--steps", "4", "--seed", "7")[1])
    other = losses(train(tiny_model, tmp_path / "c", "--steps", "4", "--seed", "8")[1])
    assert first == again
    assert first != other


def no_gpu_here() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not no_gpu_here(), reason="this machine has a GPU: --device auto trains on it")
def test_without_a_gpu_train_without_device_trains_on_the_cpu_and_says_what_that_means(tiny_model, tmp_path):
    # The README's first example, as typed on a laptop: no --device.
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--steps", "2",
                     "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "warning no CUDA GPU here (this torch build has no CUDA): --device auto trains on the CPU, tens of " \
           "times slower than on a GPU" in result.stderr
    assert "plan: peak memory about" in result.stderr and " on cpu" in result.stderr
    [row] = RunHistory(tmp_path).rows()
    assert row.status == "completed"
    # The first lines read as words, and the result ends with the next command.
    assert result.stderr.startswith(f"training run {row.run_id} on the local runtime\n")
    assert "dataset quickstart.jsonl: 48 examples in the openai format" in result.stderr
    assert "48 examples after tokenizing" in result.stderr and "run_started" not in result.stderr
    assert result.stdout.splitlines()[-1] == f"next: backprop export {row.run_id[:8]} --output {tmp_path} --format gguf"


@pytest.mark.skipif(not no_gpu_here(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_refused_before_a_run_folder_or_history_row_exists(tiny_model, tmp_path):
    trained, _ = train(tiny_model, tmp_path, "--steps", "1")
    assert trained.returncode == 0, trained.stderr
    history = (tmp_path / "run_history.json").read_bytes()
    folders = sorted(tmp_path.iterdir())
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--steps", "1",
                     "--device", "cuda", "--output", str(tmp_path))
    assert result.returncode == 4
    assert coded_error(result.stderr)[0].startswith("[DEP_GPU_NOT_AVAILABLE]: no CUDA GPU is usable here (NVML")
    assert "--device cpu" in result.stderr
    assert (tmp_path / "run_history.json").read_bytes() == history
    assert sorted(tmp_path.iterdir()) == folders


def test_a_learning_rate_that_blows_up_the_loss_stops_with_training_diverged(tiny_model, tmp_path):
    # Adam moves each weight by about the learning rate per step, so at 1e20 the first update
    # overflows the activations and step 2's loss is nan: a real divergence, nothing injected.
    result, events = train(tiny_model, tmp_path, "--steps", "4", "--learning-rate", "1e20", "--warmup-steps", "0",
                           "--lr-scheduler", "constant")
    assert result.returncode == 5
    assert coded_error(result.stderr) == ["[RUNTIME_TRAINING_DIVERGED]: the loss became nan at step 2",
                                          "  fix: lower --learning-rate (now 1e+20)"]
    assert len(losses(events)) == 1  # only the finite loss of step 1 was reported
    assert [row.status for row in RunHistory(tmp_path).rows()] == ["failed"]


def test_checkpoints_are_complete_hashed_and_pruned(tiny_model, tmp_path):
    result, events = train(tiny_model, tmp_path, "--steps", "7", "--checkpoint-every", "2",
                           "--keep-checkpoints", "2")
    assert result.returncode == 0, result.stderr
    assert [e.event.step for e in events if e.event.name == "checkpoint"] == [2, 4, 6]
    folder = tmp_path / events[0].run_id / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step-4", "step-6"]
    manifest = json.loads((folder / "step-6" / "checkpoint.json").read_text())
    assert manifest["step"] == 6
    for name, digest in manifest["files"].items():
        assert sha256_file(folder / "step-6" / name) == digest


@pytest.mark.parametrize("rows", [
    ['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}'],
    ['{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}'],
    ['{"text": "The quick brown fox jumps over the lazy dog."}'],
], ids=["openai", "alpaca", "text"])
def test_each_dataset_format_trains(tiny_model, tmp_path, rows):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(rows * 3) + "\n")
    result, events = train(tiny_model, tmp_path / "out", "--steps", "2", data=data)
    assert result.returncode == 0, result.stderr
    assert len(losses(events)) == 2


MALFORMED = {
    "bad_json": ('{"text": "ok"}\n{"text": "cut\n', 2, "not valid JSON"),
    "missing_keys": ('{"prompt": "hi", "completion": "yo"}\n', 1, "no known format"),
    "mixed_formats": ('{"text": "ok"}\n{"instruction": "a", "output": "b"}\n', 2, "row is alpaca but the file is text"),
    "empty_assistant_turn": ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}\n',
                             1, "messages[1] (assistant) is empty"),
    "wrong_types": ('{"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "x"}]}\n', 1,
                    "conversations[0].value must be a string, got int"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_dataset_gives_its_coded_error_with_file_and_line(tiny_model, tmp_path, case):
    content, line, reason = MALFORMED[case]
    data = tmp_path / f"{case}.jsonl"
    data.write_text(content)
    result = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--device", "cpu",
                     "--steps", "1", "--output", str(tmp_path / "out"))
    assert result.returncode == 3
    assert coded_error(result.stderr)[0].startswith(f"[INPUT_DATASET_INVALID]: {data}:{line}: {reason}")
    assert "Traceback" not in result.stderr
    rows = RunHistory(tmp_path / "out").rows()
    assert not [row for row in rows if row.status == "completed"]


def test_skip_invalid_trains_on_the_valid_rows_and_reports_the_dropped(tiny_model, tmp_path):
    data = tmp_path / "data.jsonl"
    good = '{"text": "a perfectly fine row of text"}'
    data.write_text("\n".join([good, '{"text": ""}', good, "{broken", good]) + "\n")
    result, events = train(tiny_model, tmp_path / "out", "--steps", "1", "--skip-invalid", data=data)
    assert result.returncode == 0, result.stderr
    warning = next(e.event for e in events if e.event.name == "warning" and e.event.code == "rows_dropped")
    assert warning.message.startswith(f"skipped 2 of 5 rows; first at {data}:2: text is empty")
    summary = json.loads(result.stdout.splitlines()[-1])["result"]
    assert (summary["examples"], summary["dropped_rows"]) == (3, 2)


def test_an_unreachable_hub_model_is_dep_model_load_failed(tmp_path):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", "nobody/no-such-model", "--device", "cpu",
                     "--steps", "1", "--output", str(tmp_path), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 4
    assert coded_error(result.stderr) == [
        "[DEP_MODEL_LOAD_FAILED]: could not load model nobody/no-such-model: We couldn't connect to "
        "'https://huggingface.co' to load the files, and couldn't find them in the cached files.",
        "  fix: pass a local folder made with save_pretrained, or a hub id reachable from here "
        "(set HF_TOKEN for gated models)",
    ]


def test_a_model_without_chat_template_falls_back_to_chatml_with_a_warning(tiny_model, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    for name in ("chat_template.jinja",):
        (bare / name).unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    result, events = train(bare, tmp_path / "out", "--steps", "1")
    assert result.returncode == 0, result.stderr
    assert any(e.event.name == "warning" and e.event.code == "chat_template_fallback" for e in events)


def test_dora_and_no_packing_are_applied(tiny_model, tmp_path):
    result, events = train(tiny_model, tmp_path, "--steps", "1", "--dora", "--no-packing")
    assert result.returncode == 0, result.stderr
    assert adapter_config(tmp_path / events[0].run_id)["use_dora"] is True
    metrics = {e.event.key: e.event.value for e in events if e.event.name == "metric"}
    examples = len(QUICKSTART.read_text(encoding="utf-8").splitlines())  # one example per line
    assert metrics["rows"] == metrics["examples"] == examples


def test_packing_puts_several_examples_in_one_row(tiny_model, tmp_path):
    result, events = train(tiny_model, tmp_path, "--steps", "1", "--packing")
    assert result.returncode == 0, result.stderr
    metrics = {e.event.key: e.event.value for e in events if e.event.name == "metric"}
    assert metrics["rows"] < metrics["examples"]


def test_ctrl_c_stops_the_run_marks_it_interrupted_and_exits_130(tiny_model, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    env["BACKPROPAGATE_RUNTIME"] = "local"  # the stage itself, not an engine that may answer here
    process = subprocess.Popen(
        [sys.executable, "-m", "backpropagate", "train", "--data", str(QUICKSTART), "--model", str(tiny_model),
         "--device", "cpu", "--steps", "100000", "--output", str(tmp_path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    for line in process.stdout:
        if '"progress"' in line:
            break
    os.killpg(process.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the whole foreground group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    [row] = RunHistory(tmp_path).rows()
    assert row.status == "interrupted"
    assert coded_error(stderr) == [f"[RUNTIME_INTERRUPTED]: run {row.run_id} was interrupted",
                                   f"  fix: continue it from its last checkpoint with `backprop resume {row.run_id}`"]
