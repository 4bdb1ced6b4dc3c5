"""Inputs a hostile (or unlucky) user gives, each through the real CLI: a fix that fits its cause.

Datasets are checked by `backprop validate`, which reads them exactly as training does;
models and flag values by `backprop train`, which refuses them before a run folder exists.
"""

import gzip
import json

import pytest

from tests.conftest import run_cli

ROWS = [{"messages": [{"role": "user", "content": f"question {i} é"}, {"role": "assistant", "content": "réponse"}]}
        for i in range(3)]
JSONL = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS)


def coded(result, code, exit_code):
    """The last two lines of stderr (message, fix) of a coded failure with no traceback."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    assert message.startswith(f"[{code}]: "), message
    return message, fix


def validate(path, *flags):
    return run_cli("validate", "--data", str(path), *flags)


@pytest.mark.parametrize("encoding, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_a_utf16_file_is_named_as_utf16_with_the_command_that_resaves_it(tmp_path, encoding, bom):
    path = tmp_path / "data.jsonl"
    path.write_bytes(bom + JSONL.encode(encoding))
    message, fix = coded(validate(path), "INPUT_DATASET_ENCODING", 3)
    assert message == (f"[INPUT_DATASET_ENCODING]: dataset {path} is not UTF-8: it is UTF-16 (it starts with a "
                       "UTF-16 byte order mark)")
    assert fix == (f"  fix: save it as UTF-8 (`iconv -f UTF-16 -t UTF-8 {path} > {tmp_path / 'data.utf8.jsonl'}`, or "
                   "your editor's save-with-encoding UTF-8), then pass that file to --data")


def test_a_latin1_file_is_named_as_latin1_not_as_bad_rows_to_skip(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(JSONL.encode("latin-1"))
    for result in (validate(path), validate(path, "--skip-invalid")):  # skipping would drop every accented row
        message, fix = coded(result, "INPUT_DATASET_ENCODING", 3)
        assert message == (f"[INPUT_DATASET_ENCODING]: dataset {path} is not UTF-8: line 1 has byte 0xe9 at column "
                           "55, which reads as latin-1 / Windows-1252")
        assert "`iconv -f WINDOWS-1252 -t UTF-8 " in fix


def test_a_gzipped_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(JSONL.encode()))
    result = validate(path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])["result"]
    assert (summary["format"], summary["rows"]) == ("openai", 3)


def test_a_directory_is_refused_with_what_to_pass_instead(tmp_path):
    message, fix = coded(validate(tmp_path), "INPUT_DATASET_UNREADABLE", 3)
    assert message == f"[INPUT_DATASET_UNREADABLE]: dataset {tmp_path} cannot be read: it is a directory"
    assert fix == "  fix: pass the JSONL or JSON file inside it to --data"


@pytest.mark.parametrize("content, what", [("[]\n", "it is an empty JSON array"), ("\n\n", "it is empty or blank")])
def test_a_file_without_rows_says_to_add_rows_not_to_skip_them(tmp_path, content, what):
    path = tmp_path / "data.json"
    path.write_text(content)
    message, fix = coded(validate(path), "INPUT_DATASET_EMPTY", 3)
    assert message == f"[INPUT_DATASET_EMPTY]: dataset {path} holds no rows: {what}"
    assert fix == "  fix: add rows to it: one JSON object per line (JSONL), or JSON objects inside the array"


def test_a_trailing_comma_in_a_json_array_is_named_with_its_line(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("[\n" + ",\n".join(json.dumps(row) for row in ROWS) + ",\n]\n")
    message, fix = coded(validate(path), "INPUT_DATASET_ARRAY_BROKEN", 3)
    assert message == (f"[INPUT_DATASET_ARRAY_BROKEN]: {path}:5: not a valid JSON array: a trailing comma before "
                       "the closing ] (column 1)")
    assert fix == "  fix: remove the comma after the last element; --skip-invalid cannot skip past a broken array"


def train(tmp_path, model, *flags):
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    output = tmp_path / "runs"
    result = run_cli("train", "--data", str(data), "--model", str(model), "--output", str(output), "--device", "cpu",
                     "--steps", "1", *flags)
    return result, output


def test_a_model_folder_without_config_json_says_what_is_missing(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"")
    result, output = train(tmp_path, model)
    message, fix = coded(result, "INPUT_MODEL_NOT_A_FOLDER", 3)
    assert message == f"[INPUT_MODEL_NOT_A_FOLDER]: model {model} is not a model folder: it has no config.json"
    assert fix == ("  fix: pass the folder save_pretrained wrote (it holds config.json and the weights), or a hub id")
    assert not output.exists()


def test_a_model_path_that_is_a_file_asks_for_its_folder(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"")
    result, output = train(tmp_path, model)
    message, fix = coded(result, "INPUT_MODEL_NOT_A_FOLDER", 3)
    assert message == f"[INPUT_MODEL_NOT_A_FOLDER]: model {model} is not a model folder: it is a file"
    assert fix == "  fix: pass the folder that holds it (the one save_pretrained wrote)"
    assert not output.exists()


def test_an_infinite_learning_rate_is_refused_before_the_run_starts(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    result, output = train(tmp_path, model, "--learning-rate", "inf")
    message, fix = coded(result, "CONFIG_VALUE_INVALID", 2)
    assert message == "[CONFIG_VALUE_INVALID]: --learning-rate=inf is not valid: must be a finite number"
    assert fix == "  fix: use a number greater than 0, such as 2e-4"
    assert not output.exists()


@pytest.mark.parametrize("args, message, fix", [
    (("train", "--learning-rate", "abc"),
     "--learning-rate='abc' is not valid: Input should be a valid number, unable to parse string as a number",
     "use a number (such as 2e-4) for --learning-rate"),
    (("train", "--steps=1.5"),
     "--steps='1.5' is not valid: Input should be a valid integer, unable to parse string as an integer",
     "use a whole number for --steps"),
    (("list-runs", "--limit", "0"),
     "--limit='0' is not valid: Input should be greater than or equal to 1", "use a number at least 1 for --limit"),
])
def test_a_flag_value_of_the_wrong_kind_is_a_coded_config_error_with_what_it_takes(args, message, fix):
    result = run_cli(*args)
    assert coded(result, "CONFIG_VALUE_INVALID", 2) == (f"[CONFIG_VALUE_INVALID]: {message}", f"  fix: {fix}")
    assert "Usage:" not in result.stderr


def test_a_corrupt_history_is_copied_once_per_content_not_once_per_command(tmp_path):
    history = tmp_path / "run_history.json"
    history.write_text("{oops")
    for _ in range(3):
        assert run_cli("list-runs", "--output", str(tmp_path)).returncode == 6
    assert len(list(tmp_path.glob("run_history.json.corrupt-*"))) == 1
    history.write_text("{oops, again")  # other bad content: a copy of its own
    result = run_cli("list-runs", "--output", str(tmp_path))
    message, fix = coded(result, "STATE_HISTORY_CORRUPT", 6)
    assert len(list(tmp_path.glob("run_history.json.corrupt-*"))) == 2
    assert fix.startswith("  fix: a copy is kept at ") and fix.endswith(f"; repair or remove {history}, then run again")


SECRET = "hf_PlantedSecretToken1234567890abcd"


def test_a_token_in_a_dataset_path_is_redacted_on_the_console_too(tmp_path):
    folder = tmp_path / f"token={SECRET}"
    folder.mkdir()
    (folder / "data.jsonl").write_text(JSONL)
    for result in (run_cli("validate", "--data", str(folder / "missing.jsonl")),
                   run_cli("validate", "--data", str(folder / "data.jsonl")),
                   run_cli("validate", "--data", str(folder / "data.jsonl"), "--json")):
        assert SECRET not in result.stdout + result.stderr
    message, _ = coded(run_cli("validate", "--data", str(folder / "missing.jsonl")), "INPUT_DATASET_NOT_FOUND", 3)
    assert message == f"[INPUT_DATASET_NOT_FOUND]: dataset {tmp_path}/token=*** does not exist"
