"""make_tiny_model.py around a tokenizer folder of the user's own choosing."""

import json
import subprocess
import sys

from transformers import AutoConfig, AutoTokenizer

from tests.conftest import ROOT

MAKE = [sys.executable, str(ROOT / "scripts" / "make_tiny_model.py")]


def test_any_tokenizer_folder_gets_the_architecture_asked_for(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_tokenizers import fetch_tokenizer

    folder = fetch_tokenizer("llama3")
    out = tmp_path / "mine"
    done = subprocess.run(MAKE + ["--tokenizer", str(folder), "--arch", "qwen3", "--out", str(out),
                                  "--pretrain-steps", "0"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = AutoConfig.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config.model_type == "qwen3" and config.vocab_size == len(tokenizer) == 128256
    assert config.hidden_size == 256 and config.intermediate_size % 256 == 0
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == tokenizer.chat_template


def test_a_folder_without_tokenizer_files_is_refused(tmp_path):
    done = subprocess.run(MAKE + ["--tokenizer", str(tmp_path), "--arch", "llama", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "holds no tokenizer.json and tokenizer_config.json" in done.stderr
