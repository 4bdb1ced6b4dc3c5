"""The Python API and `backprop validate --tokenizer`, on the tiny model."""

import json

import pytest
from backpropagate import BackpropError, Trainer
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def test_trainer_train_returns_the_run_id_adapter_and_loss_history(tiny_model, tmp_path):
    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    result = trainer.train(QUICKSTART, steps=3, lora_r=4)
    assert result.adapter_path == tmp_path / result.run_id / "adapter"
    assert (result.adapter_path / "adapter_model.safetensors").exists()
    assert len(result.loss_history) == 3 and result.final_loss == result.loss_history[-1]
    assert json.loads((result.adapter_path / "adapter_config.json").read_text())["r"] == 4
    assert RunHistory(tmp_path).find(result.run_id).status == "completed"


def test_trainer_raises_the_coded_error_the_cli_would_print(tiny_model, tmp_path):
    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    with pytest.raises(BackpropError) as caught:
        trainer.train(tmp_path / "missing.jsonl", steps=1)
    assert caught.value.code == "INPUT_DATASET_NOT_FOUND"


def test_trainer_refuses_an_unknown_setting_name_with_the_coded_error():
    with pytest.raises(BackpropError) as caught:
        Trainer("m", lora_rank=8)
    error = caught.value
    assert (error.code, error.exit_code) == ("CONFIG_ARGUMENT_UNKNOWN", 2)
    assert error.message == "Trainer() got unknown argument(s): lora_rank"
    assert error.fix.startswith("use the CLI flags' names with underscores: batch_size, checkpoint_every,")


def test_trainer_checks_values_like_the_cli(tiny_model, tmp_path):
    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    with pytest.raises(BackpropError) as caught:
        trainer.train(QUICKSTART, steps=0)
    assert caught.value.render().startswith("[CONFIG_VALUE_INVALID]: steps=0 is not valid")


def test_validate_with_a_tokenizer_reports_token_lengths_their_histogram_and_the_rendered_rows(tiny_model):
    result = run_cli("validate", "--data", str(QUICKSTART), "--tokenizer", str(tiny_model),
                     "--max-seq-length", "32", "--preview", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["result"]
    tokens = report["tokens"]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    lengths, texts = [], []
    for line in QUICKSTART.read_text().splitlines():
        messages = json.loads(line)["messages"]
        lengths.append(len(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]))
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    assert (tokens["min"], tokens["max"], tokens["total"]) == (min(lengths), max(lengths), sum(lengths))
    assert tokens["over_max_seq_length"] == sum(n > 32 for n in lengths) > 0
    bins = tokens["histogram"]
    assert bins[0]["low"] == min(lengths) and bins[-1]["low"] <= max(lengths) <= bins[-1]["high"]
    assert [b["count"] for b in bins] == [sum(b["low"] <= n <= b["high"] for n in lengths) for b in bins]
    assert report["preview"] == texts[:2] and "<|im_start|>user" in texts[0]


def test_the_cli_and_the_trainer_write_byte_identical_specs_for_the_same_settings(tiny_model, tmp_path):
    settings = {"steps": 1, "lora_r": 4, "lora_targets": "q_proj, v_proj", "learning_rate": 1e-3, "seed": 3,
                "max_seq_length": 64, "device": "cpu", "checkpoint_every": 0, "packing": False}
    flags = [part for name, value in settings.items() for part in (
        [f"--{name.replace('_', '-')}", str(value)] if not isinstance(value, bool)
        else [f"--{'' if value else 'no-'}{name}"])]
    cli = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), *flags, "--output", str(tmp_path),
                  "--json")
    assert cli.returncode == 0, cli.stderr
    cli_run = json.loads(cli.stdout.splitlines()[-1])["result"]["run_id"]
    api_run = Trainer(str(tiny_model), output=tmp_path, progress=False, **settings).train(QUICKSTART).run_id

    def spec_bytes(run_id: str) -> bytes:
        return (tmp_path / run_id / "spec.json").read_bytes().replace(run_id.encode(), b"<run id>")

    assert spec_bytes(cli_run) == spec_bytes(api_run)
    assert json.loads(spec_bytes(api_run))["lora"]["targets"] == ["q_proj", "v_proj"]
