"""A row too long to train on (a 50 MB single-line row) is refused before any heavy work, naming its length.

The reader never holds such a line: it counts its bytes in chunks, so the refusal takes a fraction of a
second and a few tens of MB whatever the row's size (before: 180 s and 7.3 GB, tokenizing it).
"""

import json
import time

from backpropagate.contract.dataset.reader import MAX_ROW_BYTES

from tests.conftest import run_cli

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def row_of(size: int) -> str:
    """A valid row whose JSON text is exactly ``size`` bytes."""
    empty = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]})
    cut = empty.rindex('""') + 1
    return empty[:cut] + "x" * (size - len(empty)) + empty[cut:]


def lines(result):
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-2:]


def test_a_50_mb_single_line_row_is_refused_at_once_with_its_line_and_length(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(ROW) + "\n" + row_of(50_000_000) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    output = tmp_path / "runs"
    started = time.monotonic()
    trained = run_cli("train", "--data", str(data), "--model", str(model), "--output", str(output), "--device", "cpu",
                      "--steps", "1")
    assert time.monotonic() - started < 20  # the whole CLI start included; the refusal itself takes ~0.3 s
    assert trained.returncode == 3
    assert lines(trained) == [
        f"[INPUT_DATASET_ROW_TOO_LONG]: {data}:2: the row is 50,000,000 bytes long, over the limit of 1,048,576 "
        "bytes a row may have",
        "  fix: split it into rows of at most 1,048,576 bytes, one example each, or pass --skip-invalid to train on "
        "the other rows without it"]
    assert not output.exists()


def test_with_skip_invalid_the_long_row_is_dropped_and_listed(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(ROW) + "\n" + row_of(MAX_ROW_BYTES + 1) + "\n" + json.dumps(ROW) + "\n")
    listed = run_cli("validate", "--data", str(data), "--skip-invalid", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout.splitlines()[-1])["result"]
    assert (report["rows"], report["valid"]) == (3, 2)
    assert report["problems"] == [{"line": 2, "reason": "the row is 1,048,577 bytes long, over the limit of 1,048,576"}]


def test_a_file_whose_only_row_is_too_long_is_not_told_to_skip_it(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(row_of(3 * MAX_ROW_BYTES) + "\r\n")
    assert lines(run_cli("validate", "--data", str(data))) == [
        f"[INPUT_DATASET_ROW_TOO_LONG]: {data}:1: the row is 3,145,728 bytes long, over the limit of 1,048,576 bytes "
        "a row may have",
        "  fix: split it into rows of at most 1,048,576 bytes, one example each"]


def test_a_long_element_of_a_json_array_is_refused_with_the_line_it_starts_on(tmp_path):
    data = tmp_path / "data.json"
    data.write_text("[\n" + json.dumps(ROW) + ",\n" + row_of(2 * MAX_ROW_BYTES) + "\n]\n")
    assert lines(run_cli("validate", "--data", str(data)))[0] == (
        f"[INPUT_DATASET_ROW_TOO_LONG]: {data}:3: the row is 2,097,152 bytes long, over the limit of 1,048,576 "
        "bytes a row may have")


def test_a_row_of_exactly_the_limit_is_read(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(row_of(MAX_ROW_BYTES) + "\n")
    checked = run_cli("validate", "--data", str(data))
    assert checked.returncode == 0, checked.stderr
    assert "rows: 1 (1 valid, 0 invalid)" in checked.stdout
