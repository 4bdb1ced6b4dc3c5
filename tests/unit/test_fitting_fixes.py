"""Faults found before anything runs, each with the fix of its own cause, through the real `backprop train`.

Model folders are built by hand in the real file formats (config.json, safetensors: an 8-byte header
length, a JSON header, the tensor bytes), then damaged the way downloads and hand edits damage them.
"""

import json
import struct

import pytest

from tests.conftest import run_cli
from tests.unit.test_hostile_inputs import JSONL, coded


def train(tmp_path, *flags, data=None):
    if data is None:
        data = tmp_path / "data.jsonl"
        data.write_text(JSONL)
    return run_cli("train", "--data", str(data), "--output", str(tmp_path / "runs"), "--device", "cpu",
                   "--steps", "1", *flags)


def no_run_folder(tmp_path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


def safetensors_bytes(tensors: dict[str, list[int]]) -> bytes:
    """A real safetensors file of F32 tensors with these shapes (zeros)."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 4 * shape[0] * shape[1]
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * offset


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"a.weight": [8, 8], "b.weight": [8, 4]}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    return folder


def test_the_hand_made_folder_passes_the_folder_checks(tmp_path, model_folder):
    """The control: what the cases below damage is whole here, so each failure is the damage's."""
    from backpropagate.contract.model_folder import check_model_folder

    check_model_folder(model_folder, str(model_folder))


def test_a_truncated_safetensors_file_is_named_with_the_size_it_should_have(tmp_path, model_folder):
    weights = model_folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:-100])
    message, fix = coded(train(tmp_path, "--model", str(model_folder)), "INPUT_MODEL_WEIGHTS_DAMAGED", 3)
    assert message == (f"[INPUT_MODEL_WEIGHTS_DAMAGED]: model weights {weights} are damaged: it is cut short: its "
                       f"tensors need {len(whole):,} bytes, the file has {len(whole) - 100:,} (an interrupted "
                       "download or copy)")
    assert fix == (f"  fix: copy or download {weights} again from where the model came from, and compare its size "
                   "or sha256 with the source's")
    assert no_run_folder(tmp_path)


@pytest.mark.parametrize("content, reason", [
    (b"this is not a model, just text renamed", "its header claims"),
    (struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64, "its header is not JSON: it is not a safetensors file"),
    (safetensors_bytes({"a.weight": [8, 8]}).replace(b"[8, 8]", b"[9, 9]"),
     "tensor 'a.weight' (F32 [9, 9]) should take 324 bytes, its offsets give 256"),
])
def test_a_forged_safetensors_file_is_told_apart_from_a_model_load_failure(tmp_path, model_folder, content, reason):
    (model_folder / "model.safetensors").write_bytes(content)
    message, _ = coded(train(tmp_path, "--model", str(model_folder)), "INPUT_MODEL_WEIGHTS_DAMAGED", 3)
    assert reason in message


def test_a_shard_index_naming_a_missing_shard_names_it(tmp_path, model_folder):
    (model_folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "model.safetensors", "c.weight": "model-00002-of-00002.safetensors"}}))
    message, _ = coded(train(tmp_path, "--model", str(model_folder)), "INPUT_MODEL_WEIGHTS_DAMAGED", 3)
    assert message.endswith("the shard(s) it names are missing: model-00002-of-00002.safetensors")


@pytest.mark.parametrize("config, reason", [
    ('{"model_type": "llama",', "is not valid JSON (Expecting property name enclosed in double quotes"),
    ('["llama"]', "is not a JSON object"),
    ('{"hidden_size": 8}', "names no model_type (the architecture transformers builds)"),
])
def test_a_bad_config_json_says_what_is_wrong_with_it(tmp_path, model_folder, config, reason):
    (model_folder / "config.json").write_text(config)
    message, fix = coded(train(tmp_path, "--model", str(model_folder)), "INPUT_MODEL_CONFIG_INVALID", 3)
    assert message.startswith(f"[INPUT_MODEL_CONFIG_INVALID]: model {model_folder}: its config.json {reason}")
    assert fix == ("  fix: put back the config.json the model was published with (save_pretrained writes it), "
                   "or pass another model")


def test_a_tokenizer_file_that_is_not_json_is_a_tokenizer_fault(tmp_path, model_folder):
    (model_folder / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    message, fix = coded(train(tmp_path, "--model", str(model_folder)), "INPUT_MODEL_TOKENIZER_INVALID", 3)
    assert message.startswith(f"[INPUT_MODEL_TOKENIZER_INVALID]: the tokenizer of model {model_folder} cannot be "
                              "read: tokenizer.json is not valid JSON")
    assert "tokenizer.json, tokenizer_config.json, tokenizer.model" in fix


@pytest.mark.parametrize("flag, value, allowed", [("--seed", "4294967296", "an integer from 0 to 4294967295"),
                                                  ("--lora-r", "100000000", "an integer from 1 to 4096")])
def test_a_seed_or_rank_no_library_can_take_is_refused_before_the_run(tmp_path, model_folder, flag, value, allowed):
    message, fix = coded(train(tmp_path, "--model", str(model_folder), flag, value), "CONFIG_VALUE_INVALID", 2)
    assert message.startswith(f"[CONFIG_VALUE_INVALID]: {flag}={value} is not valid: must be from ")
    assert fix == f"  fix: use {allowed}"
    assert no_run_folder(tmp_path)


def test_a_lone_surrogate_in_a_row_is_named_before_the_run(tmp_path, model_folder):
    data = tmp_path / "surrogate.jsonl"
    data.write_text(JSONL + '{"messages": [{"role": "user", "content": "cut \\ud83d emoji"}, '
                            '{"role": "assistant", "content": "ok"}]}\n')
    message, fix = coded(train(tmp_path, "--model", str(model_folder), data=data), "INPUT_DATASET_INVALID", 3)
    assert message == (f"[INPUT_DATASET_INVALID]: {data}:4: row.messages[0].content holds a lone surrogate, which "
                       "is not valid Unicode (half of a UTF-16 pair, such as a cut emoji)")
    assert fix == "  fix: fix that row, or pass --skip-invalid to train on the valid rows only"  # it is the row's
    assert no_run_folder(tmp_path)


def test_format_text_on_an_openai_file_says_to_change_the_flag_not_the_rows(tmp_path, model_folder):
    data = tmp_path / "chat.jsonl"
    data.write_text(JSONL)
    for flags in ((), ("--skip-invalid",)):
        message, fix = coded(train(tmp_path, "--model", str(model_folder), "--format", "text", *flags, data=data),
                             "INPUT_DATASET_FORMAT_MISMATCH", 3)
        assert message == (f"[INPUT_DATASET_FORMAT_MISMATCH]: {data}:1 is a row in openai format, but --format says "
                           "the file is text")
        assert fix == "  fix: pass --format openai (or leave --format out to detect it), or convert the file to text"


def test_eval_split_on_a_one_row_file_says_what_the_split_needs(tmp_path, model_folder):
    data = tmp_path / "one.jsonl"
    data.write_text(JSONL.splitlines(keepends=True)[0])
    message, fix = coded(train(tmp_path, "--model", str(model_folder), "--eval-split", "0.1", data=data),
                         "INPUT_EVAL_SPLIT_TOO_FEW", 3)
    assert message == (f"[INPUT_EVAL_SPLIT_TOO_FEW]: --eval-split 0.1 holds out rows of {data}, which has 1 usable "
                       "example(s): it needs at least 2, one to train on and one to hold out")
    assert fix == (f"  fix: add rows to {data}, give the held-out rows in a file of their own with --eval-data FILE, "
                   "or drop --eval-split")
    assert no_run_folder(tmp_path)
