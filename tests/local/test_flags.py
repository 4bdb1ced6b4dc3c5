"""Every training flag does what it says: each one, changed alone, changes the run."""

import json

import pytest
import torch
from backpropagate.contract.events import parse_line
from safetensors.torch import load_file

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"
BASE = ("--steps", "3", "--device", "cpu", "--learning-rate", "1e-3", "--warmup-steps", "0", "--json",
        "--checkpoint-every", "0")


def run(model, output, *flags):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--output", str(output), *BASE,
                     *flags)
    assert result.returncode == 0, result.stderr
    events = [parse_line(line) for line in result.stdout.splitlines() if '"event"' in line]
    summary = json.loads(result.stdout.splitlines()[-1])["result"]
    weights = load_file(f"{summary['adapter']}/adapter_model.safetensors")
    return summary, weights, events


@pytest.fixture(scope="module")
def baseline(tiny_model, tmp_path_factory):
    return run(tiny_model, tmp_path_factory.mktemp("baseline"))


@pytest.mark.parametrize("flags", [
    ("--weight-decay", "0.5"),
    ("--max-grad-norm", "0.0001"),
    ("--lora-dropout", "0.1"),
    ("--lora-alpha", "8"),
    ("--lr-scheduler", "constant"),
    ("--batch-size", "1"),
    ("--gradient-accumulation", "1"),
    ("--train-on-inputs",),
    ("--seed", "1"),
], ids=lambda flags: flags[0])
def test_the_flag_changes_the_trained_adapter(tiny_model, tmp_path, baseline, flags):
    _, base_weights, _ = baseline
    _, weights, _ = run(tiny_model, tmp_path, *flags)
    assert weights.keys() == base_weights.keys()
    assert any(not torch.equal(weights[name], base_weights[name]) for name in weights)


def test_warmup_starts_the_learning_rate_low(tiny_model, tmp_path, baseline):
    summary, _, _ = run(tiny_model, tmp_path, "--warmup-steps", "3")
    assert baseline[0]["learning_rates"][0] == pytest.approx(1e-3)
    assert summary["learning_rates"][0] == pytest.approx(1e-3 / 4)


def test_a_short_max_seq_length_cuts_examples_and_says_so(tiny_model, tmp_path):
    _, _, events = run(tiny_model, tmp_path, "--max-seq-length", "24")
    warnings = [e.event for e in events if e.event.name == "warning" and e.event.code == "examples_truncated"]
    assert warnings and "cut to --max-seq-length 24" in warnings[0].message
