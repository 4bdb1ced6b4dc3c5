"""The new-run form's Plan: `backprop plan`'s estimate for the picked model and the form's memory settings,
the very figures the CLI gives, shown under the form as it was sent."""

import json
import re
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from tests.unit.test_ui_security import client_for, logged_in

FORM = {"model": "llama3.2-1b", "batch_size": "2", "max_seq_length": "512", "device": "cpu", "steps": "7"}


def cli_plan(*flags: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "backpropagate", "plan", *flags, "--json"], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])["result"]


def test_plan_shows_the_clis_peak_memory_for_the_picked_preset_and_the_forms_length(tmp_path):
    client = client_for(tmp_path / "ui")
    token = logged_in(client)
    short = client.post("/runs/plan", data={**FORM, "csrf": token})
    assert short.status_code == 200
    expected = cli_plan("--model", "llama3.2-1b", "--batch-size", "2", "--max-seq-length", "512", "--device", "cpu")
    summary = re.search(r'<p id="plan-summary">(.*?)</p>', short.text, re.S).group(1)
    assert f"Peak memory about {expected['peak_memory_bytes'] / 2**30:.2f} GiB on the cpu" in summary
    assert "micro-batch 2, rows of 512 tokens" in summary
    assert 'name="steps" type="number"' in short.text and 'value="7"' in short.text  # the form as it was sent

    longer = client.post("/runs/plan", data={**FORM, "max_seq_length": "2048", "csrf": token})
    peak = cli_plan("--model", "llama3.2-1b", "--batch-size", "2", "--max-seq-length", "2048", "--device", "cpu")
    assert peak["peak_memory_bytes"] > expected["peak_memory_bytes"]
    assert f"Peak memory about {peak['peak_memory_bytes'] / 2**30:.2f} GiB" in longer.text


def test_plan_of_a_model_whose_config_cannot_be_read_shows_the_coded_error(tmp_path):
    client = client_for(tmp_path / "ui")
    token = logged_in(client)
    refused = client.post("/runs/plan", data={**FORM, "model": "models/none-such", "csrf": token})
    assert refused.status_code == 400
    assert re.search(r'<p class="error" id="plan-error">\[[A-Z_]+\]: ', refused.text), refused.text[-800:]
