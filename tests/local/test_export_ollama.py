"""`backprop export RUN --format gguf --ollama` on the tiny model, registered into a STAND-IN Ollama server.

The stand-in (tests/unit/ollama_standin.py) checks the upload's digest and the create
request; it cannot load the model, so what this shows is that the exported GGUF itself
is what reaches Ollama, with the ChatML template and stop tokens of the tiny model's tokenizer.
"""

import hashlib
import importlib.util
import json

import pytest
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli
from tests.unit.ollama_standin import OllamaStandIn

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                reason="needs the pinned llama.cpp (bash scripts/setup_llama_cpp.sh)")


def test_export_gguf_with_ollama_uploads_that_gguf_with_chatml_template_and_stops(tiny_model, tmp_path):
    trained = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--device", "cpu", "--steps",
                      "2", "--checkpoint-every", "0", "--output", str(tmp_path), "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    with OllamaStandIn() as server:
        result = run_cli("export", run_id, "--format", "gguf", "--quantization", "q8_0", "--ollama",
                         "--ollama-name", "tiny-bees", "--output", str(tmp_path), "--json",
                         env={"OLLAMA_HOST": server.host})
        assert result.returncode == 0, result.stderr
        gguf = tmp_path / run_id / "gguf" / "model-q8_0.gguf"
        digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
        created = server.models["tiny-bees:latest"]
        assert created["files"] == {"model-q8_0.gguf": digest}
        assert server.blobs[digest] == gguf.read_bytes()
        assert created["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
        assert created["parameters"]["num_ctx"] == 1024  # the run's --max-seq-length default
        assert "<|im_start|>user\n{{ .Content }}<|im_end|>\n" in created["template"]
    outputs = json.loads(result.stdout.splitlines()[-1])["result"]
    assert outputs["ollama"]["name"] == "tiny-bees" and outputs["ollama"]["family"] == "chatml"
    assert RunHistory(tmp_path).find(run_id).ollama[0]["name"] == "tiny-bees"
