"""`backprop presets` and `backprop plan` work offline, from config files alone; `train` refuses a run whose plan
cannot fit, before anything runs; a preset names its hub id and method to `train`."""

import json
import socket

import pytest
from typer.testing import CliRunner

from backpropagate.app import app
from backpropagate.contract.settings import LoraSettings
from backpropagate.options import settings_from_arguments
from backpropagate.planning.device import gpu_absent
from backpropagate.planning.memory import RUNTIME_CPU_BYTES, TOKENIZER_BYTES_PER_ENTRY, RunShape, estimate
from backpropagate.planning.presets import presets
from backpropagate.runs.plan import plan_train

from tests.conftest import ROOT, run_cli
from tests.unit.test_plan_memory import HAND

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: planning must read only files."""
    def refuse(*args, **kwargs):
        raise AssertionError("planning tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def hand_model(tmp_path):
    """A model folder with only the hand model's config.json: planning needs no weights."""
    folder = tmp_path / "hand"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HAND))
    return folder


def result_of(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])["result"]


def test_presets_lists_every_preset_with_its_hub_id_license_method_and_planned_memory(no_network):
    out = CliRunner().invoke(app, ["presets", "--json"])
    assert out.exit_code == 0, out.output
    rows = {row["name"]: row for row in result_of(out.output)["presets"]}
    assert set(rows) == {"qwen2.5-7b", "qwen2.5-3b", "llama3.2-3b", "llama3.2-1b", "mistral-7b", "phi4-mini",
                         "smollm3-3b"}
    qwen = rows["qwen2.5-7b"]
    assert (qwen["hub_id"], qwen["license"], qwen["method"], qwen["chat_family"]) == (
        "Qwen/Qwen2.5-7B-Instruct", "apache-2.0", "qlora", "chatml")
    defaults = RunShape(batch_size=2, seq_len=1024, lora_r=16, targets=("all-linear",), qlora=True, device="cuda",
                        dropout=LoraSettings().dropout > 0)
    assert qwen["peak_memory_bytes"] == estimate(presets()["qwen2.5-7b"].shape, defaults).peak
    table = CliRunner().invoke(app, ["presets"]).output
    assert "mistralai/Mistral-7B-Instruct-v0.3" in table and "GPU memory" in table


def test_plan_of_a_preset_ends_with_its_peak_as_json_and_uses_the_presets_method(no_network):
    out = CliRunner().invoke(app, ["plan", "--model", "qwen2.5-7b", "--device", "cuda", "--json"])
    assert out.exit_code == 0, out.output
    result = result_of(out.output)
    defaults = RunShape(batch_size=2, seq_len=1024, lora_r=16, targets=("all-linear",), qlora=True, device="cuda",
                        dropout=LoraSettings().dropout > 0)
    assert result["peak_memory_bytes"] == estimate(presets()["qwen2.5-7b"].shape, defaults).peak
    assert result["qlora"] is True and result["gradient_checkpointing"] is True
    assert result["fits"] is None  # no GPU here, and no limit given: not checked, and said so
    assert result["limit"].startswith("no GPU found here")


@pytest.mark.skipif(gpu_absent() is None, reason="NVML finds a GPU here, or is not installed")
def test_plan_with_device_auto_and_no_gpu_here_plans_the_cpu_run_it_will_be(no_network):
    out = CliRunner().invoke(app, ["plan", "--model", "qwen2.5-7b", "--json"])
    result = result_of(out.output)
    assert result["device"] == "cpu" and result["qlora"] is False  # a QLoRA preset trains with LoRA on the CPU
    assert result["limit"] == "the RAM available now (MemAvailable)"


def test_plan_of_a_local_folder_is_the_hand_computed_sum(no_network, hand_model):
    out = CliRunner().invoke(app, ["plan", "--model", str(hand_model), "--device", "cpu", "--batch-size", "2",
                                   "--max-seq-length", "32", "--lora-r", "4", "--lora-dropout", "0.05", "--json"])
    assert out.exit_code == 0, out.output
    peak = result_of(out.output)["peak_memory_bytes"]
    # The parts of tests/unit/test_plan_memory.py's CPU run (with dropout): the loss chunk, runtime and allocator's
    # slack there.
    assert peak == (5408 + 4096 + 4096 + 8192 + 225_792 + 7_680 + RUNTIME_CPU_BYTES + 10 * TOKENIZER_BYTES_PER_ENTRY
                    + 49_152)


def test_plan_reads_a_hub_models_config_from_the_hugging_face_cache(no_network, monkeypatch, tmp_path):
    repo = tmp_path / "hub" / "models--someone--hand"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps(HAND))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = CliRunner().invoke(app, ["plan", "--model", "someone/hand", "--device", "cpu", "--json"])
    assert out.exit_code == 0, out.output
    assert result_of(out.output)["config"] == "someone/hand in the Hugging Face cache"


def test_plan_of_a_hub_model_not_downloaded_says_how_to_get_its_config(tmp_path):
    result = run_cli("plan", "--model", "someone/not-here", env={"HF_HUB_CACHE": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr.startswith("[INPUT_MODEL_CONFIG_NOT_CACHED]: the config.json of someone/not-here is not "
                                    f"on this machine (looked in {tmp_path})")
    assert ("fix: name a preset (`backprop presets`) or a local folder, or fetch the file once: `hf download "
            "someone/not-here config.json`") in result.stderr


def test_plan_refuses_a_shape_it_does_not_cover_by_name(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**HAND, "model_type": "gpt2"}))
    result = run_cli("plan", "--model", str(tmp_path))
    assert result.returncode == 3
    assert f"[INPUT_MODEL_SHAPE_UNKNOWN]: cannot plan {tmp_path}: model_type 'gpt2' is not one of" in result.stderr
    assert ("fix: plans cover decoder-only Llama, Mistral, Qwen2/3, SmolLM3 and Phi-3 shapes (every preset in "
            "`backprop presets`); `backprop train` runs other models without a plan") in result.stderr


def test_plan_over_the_limit_says_it_does_not_fit_and_what_to_change(no_network, hand_model):
    out = CliRunner().invoke(app, ["plan", "--model", str(hand_model), "--device", "cpu", "--batch-size", "8",
                                   "--max-seq-length", "1024", "--memory-limit-gb", "0.45", "--json"])
    result = result_of(out.output)
    assert result["fits"] is False and result["limit"] == "--memory-limit-gb 0.45"
    assert result["change"].startswith("--batch-size ")


def test_train_refuses_a_run_that_cannot_fit_before_any_run_folder_exists(hand_model, tmp_path):
    output = tmp_path / "runs"
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(hand_model), "--device", "cpu",
                     "--batch-size", "8", "--max-seq-length", "1024", "--memory-limit-gb", "0.45",
                     "--output", str(output))
    assert result.returncode == 2
    error, fix = result.stderr.strip().splitlines()[-2:]
    assert error.startswith("[CONFIG_PLAN_EXCEEDS_MEMORY]: the run needs about ")
    assert error.endswith(" at its peak, more than the 0.45 GiB of --memory-limit-gb 0.45")
    assert fix.startswith("  fix: use --batch-size ")
    assert fix.endswith(" (`backprop plan` with the same flags shows where the memory goes), or set --memory-limit-gb "
                        "if more memory is there than was found")
    assert not output.exists() or not any(output.iterdir())


def test_the_memory_limit_is_a_setting_with_an_environment_variable(hand_model, tmp_path):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(hand_model), "--device", "cpu",
                     "--batch-size", "8", "--max-seq-length", "1024", "--output", str(tmp_path),
                     env={"BACKPROPAGATE_TRAINING__MEMORY_LIMIT_GB": "0.45"})
    assert "[CONFIG_PLAN_EXCEEDS_MEMORY]" in result.stderr


@pytest.mark.parametrize("arguments, env, qlora", [
    ({"model": "qwen2.5-7b", "device": "cuda"}, {}, True),
    ({"model": "qwen2.5-7b"}, {}, gpu_absent() is None),  # --device auto: the CPU where there is certainly no GPU
    ({"model": "llama3.2-1b"}, {}, False),
    ({"model": "qwen2.5-7b", "qlora": False}, {}, False),
    ({"model": "qwen2.5-7b"}, {"BACKPROPAGATE_LORA__QLORA": "false"}, False),
    ({"model": "qwen2.5-7b", "device": "cpu"}, {}, False),
    ({"model": "Qwen/Qwen2.5-7B-Instruct"}, {}, False),
])
def test_a_presets_method_applies_unless_the_user_chose_one_or_the_cpu(arguments, env, qlora):
    assert settings_from_arguments(arguments, environ=env).lora.qlora is qlora


def test_train_with_a_preset_trains_its_hub_id(tmp_path):
    settings = settings_from_arguments({"model": "mistral-7b", "output": str(tmp_path), "memory_limit_gb": 1000},
                                       environ={})
    plan = plan_train(settings, QUICKSTART)
    assert plan.spec.model == "mistralai/Mistral-7B-Instruct-v0.3"
    assert plan.spec.lora.qlora is (gpu_absent() is None)  # the preset's QLoRA, but LoRA where it trains on the CPU
    assert plan.memory.fits is True


SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}


def test_plan_gives_seconds_per_step_from_the_throughput_measured_for_the_shape(no_network, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2))
    out = CliRunner().invoke(app, ["plan", "--model", str(tmp_path), "--device", "cpu", "--json"])
    result = result_of(out.output)
    # 2 rows x 1024 tokens x 4 micro-batches per step at the measured 210 tokens/s.
    assert (result["tokens_per_s"], result["seconds_per_step"]) == (210.0, round(2 * 1024 * 4 / 210, 2))
    assert "quickstart" in result["pace"]


def test_plan_says_when_no_throughput_was_measured(no_network, hand_model):
    out = CliRunner().invoke(app, ["plan", "--model", str(hand_model), "--device", "cpu", "--json"])
    result = result_of(out.output)
    assert result["seconds_per_step"] is None
    assert result["pace"] == "no throughput measured for this model on cpu"
