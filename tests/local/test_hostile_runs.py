"""Hostile settings that only the model can judge, through the real CLI on the tiny model."""

from backpropagate.contract.events import parse_line

from tests.conftest import run_cli
from tests.unit.test_hostile_inputs import JSONL


def test_lora_targets_the_model_does_not_have_are_refused_with_its_module_names(tiny_model, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    result = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--output", str(tmp_path / "runs"),
                     "--device", "cpu", "--steps", "1", "--lora-targets", "q_proj,qkv_proj", "--json")
    assert result.returncode == 2, result.stderr
    events = [parse_line(line).event for line in result.stdout.splitlines() if '"event"' in line]
    error = next(event for event in events if event.name == "error")
    assert error.code == "CONFIG_VALUE_INVALID"
    assert error.message == (f"--lora-targets='q_proj,qkv_proj' is not valid: {tiny_model} has no linear layer "
                                "named qkv_proj")
    assert error.fix == "use all-linear or some of down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"
    assert not list((tmp_path / "runs").rglob("adapter_config.json"))  # nothing trained on a name that means nothing
