"""Faults only the train stage can see, each found before the weights load, with the fix of its cause."""

import json
import shutil
import subprocess
import sys

import pytest

from backpropagate.config import load_settings
from backpropagate.runs.plan import plan_train

from tests.conftest import cli_env, run_cli
from tests.unit.test_hostile_inputs import JSONL, coded


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    return copy


def train(tmp_path, model, *flags):
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    return run_cli("train", "--data", str(data), "--model", str(model), "--output", str(tmp_path / "runs"),
                   "--device", "cpu", "--steps", "1", "--report-to", "none", *flags)


def test_an_architecture_transformers_does_not_know_is_named_as_such(tmp_path, model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "model_type": "florp"}))
    message, fix = coded(train(tmp_path, model_copy), "INPUT_MODEL_ARCHITECTURE_UNKNOWN", 3)
    assert message.startswith(f"[INPUT_MODEL_ARCHITECTURE_UNKNOWN]: model {model_copy} is of model_type 'florp', "
                              "an architecture transformers 5.")
    assert message.endswith(" does not know")
    assert fix == ("  fix: train a model of an architecture transformers knows (llama, qwen2, mistral, gemma3, ...), "
                   "or use a transformers release that knows 'florp'")


def test_a_tokenizer_transformers_cannot_build_is_a_tokenizer_fault_not_a_model_one(tmp_path, model_copy):
    (model_copy / "tokenizer.json").unlink(missing_ok=True)
    (model_copy / "tokenizer.model").write_bytes(b"\x0a\xff not a SentencePiece model, a broken copy" * 8)
    message, fix = coded(train(tmp_path, model_copy), "INPUT_MODEL_TOKENIZER_INVALID", 3)
    assert message.startswith(f"[INPUT_MODEL_TOKENIZER_INVALID]: the tokenizer of model {model_copy} cannot be read: ")
    assert fix == ("  fix: put back the model's tokenizer files (tokenizer.json, tokenizer_config.json, "
                   "tokenizer.model) as it was published, or write them with the tokenizer's save_pretrained")


def test_a_chat_template_that_raises_on_a_row_names_the_row_and_the_templates_words(tmp_path, model_copy):
    (model_copy / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'user' and 'question 1' in m['content'] %}"
        "{{ raise_exception('question 1 is not allowed') }}{% endif %}{{ m['content'] }}{% endfor %}")
    config = json.loads((model_copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model_copy / "tokenizer_config.json").write_text(json.dumps(config))
    message, fix = coded(train(tmp_path, model_copy), "INPUT_CHAT_TEMPLATE_FAILED", 3)
    assert message == (f"[INPUT_CHAT_TEMPLATE_FAILED]: the chat template of {model_copy} refused "
                       f"{tmp_path / 'data.jsonl'}:2: question 1 is not allowed")
    assert fix == ("  fix: change that row so the template accepts it, pass --skip-invalid to train without the rows "
                   "it refuses, or train with a model whose template takes these conversations")
    skipped = train(tmp_path, model_copy, "--skip-invalid")
    assert skipped.returncode == 0, skipped.stderr
    assert "the chat template refused it: question 1 is not allowed" in skipped.stderr


def test_a_data_file_changed_after_planning_says_to_put_it_back_and_resume(tmp_path, tiny_model):
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    settings = load_settings(overrides={"model.name": str(tiny_model), "output": str(tmp_path / "runs"),
                                        "training.device": "cpu", "training.steps": 1})
    plan = plan_train(settings, data)
    data.write_text(JSONL + JSONL)  # edited while the run is about to train on it
    stage = subprocess.run([sys.executable, "-m", "backpropagate_stages.train", "--spec", str(plan.folder.spec)],
                           capture_output=True, text=True, env=cli_env())
    error = next(json.loads(line) for line in stage.stdout.splitlines() if '"event": "error"' in line
                 or '"event":"error"' in line)
    run_id = plan.spec.run_id
    assert error["code"] == "INPUT_DATASET_CHANGED_MID_RUN"
    assert error["message"].startswith(f"dataset {data} changed after run {run_id} was planned (sha256 ")
    assert error["fix"] == (f"put the file back as it was and `backprop resume {run_id}`, or start a new run on it as "
                            "it is now with `backprop train` (copy a file you edit while a run trains on it)")
