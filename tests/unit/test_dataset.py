"""The dataset reader: which files and rows it accepts, and the exact message for each it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from backpropagate.contract.dataset import Example, Message, Problem, load_dataset
from backpropagate.contract.errors import BackpropError

SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
OPENAI = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
}
ALPACA = {"instruction": "Translate to French", "input": "cat", "output": "chat"}
TEXT = {"text": "Once upon a time"}
GOOD = {"sharegpt": SHAREGPT, "openai": OPENAI, "alpaca": ALPACA, "text": TEXT}

EXPECTED_KEYS = "'conversations' (sharegpt), 'messages' (openai), 'instruction' and 'output' (alpaca), or 'text' (text)"


def _write(tmp_path, content: str | bytes, name: str = "data.jsonl"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _jsonl(*rows) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _error(path, **options) -> BackpropError:
    with pytest.raises(BackpropError) as caught:
        load_dataset(path, **options)
    return caught.value


def _turns(*pairs) -> list[dict]:
    return [{"from": role, "value": value} for role, value in pairs]


def _chat(*pairs) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


# Each case: the format of the good rows around the bad one, the bad row, and the reason.
BAD_ROWS = {
    "bad_json_quotes_jsons_message": ("sharegpt", '{"text": "hi"', "not valid JSON: Expecting ',' delimiter (column 14)"),
    "invalid_utf8_names_the_byte": ("text", b'{"text": "caf\x81"}', "not valid UTF-8: byte 0x81 at column 14"),
    "row_not_an_object": ("sharegpt", '["hi"]', "row must be a JSON object, got list"),
    "no_known_format_lists_keys_found_and_expected": (
        "sharegpt",
        {"prompt": "Hi", "completion": "Hello"},
        f"no known format: found keys 'prompt', 'completion'; expected {EXPECTED_KEYS}",
    ),
    "empty_object_has_no_keys": ("text", {}, f"no known format: found no keys; expected {EXPECTED_KEYS}"),
    "mixed_formats_name_the_line_that_set_the_format": (
        "sharegpt",
        ALPACA,
        "row is alpaca but the file is sharegpt (from line 1)",
    ),
    "conversations_not_a_list": ("sharegpt", {"conversations": "Hi"}, "conversations must be a list, got string"),
    "conversations_empty": ("sharegpt", {"conversations": []}, "conversations is empty"),
    "turn_not_an_object": ("sharegpt", {"conversations": ["Hi"]}, "conversations[0] must be an object, got string"),
    "turn_missing_role_key": ("sharegpt", {"conversations": [{"value": "Hi"}]}, "conversations[0] has no 'from'"),
    "turn_value_wrong_type": (
        "sharegpt",
        {"conversations": _turns(("human", "Hi"), ("gpt", 42))},
        "conversations[1].value must be a string, got int",
    ),
    "unknown_sharegpt_role_lists_accepted_roles": (
        "sharegpt",
        {"conversations": _turns(("human", "Hi"), ("bot", "Hello"))},
        "conversations[1].from has unknown role 'bot'; expected human, user, gpt, assistant or system",
    ),
    "unknown_openai_role_lists_accepted_roles": (
        "openai",
        {"messages": _chat(("user", "Hi"), ("assistant", "Let me check."), ("tool", "{}"))},
        "messages[2].role has unknown role 'tool'; expected system, user or assistant",
    ),
    "openai_content_null": (
        "openai",
        {"messages": _chat(("user", None), ("assistant", "Hello"))},
        "messages[0].content must be a string, got null",
    ),
    "empty_openai_assistant_turn": (
        "openai",
        {"messages": _chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "  "))},
        "messages[2] (assistant) is empty",
    ),
    "empty_sharegpt_assistant_turn": (
        "sharegpt",
        {"conversations": _turns(("human", "Hi"), ("gpt", ""))},
        "conversations[1] (assistant) is empty",
    ),
    "sharegpt_without_assistant_turn": (
        "sharegpt",
        {"conversations": _turns(("system", "Be brief."), ("human", "Hi"))},
        "conversations has no assistant turn ('from': gpt or assistant), so there is nothing to train on",
    ),
    "openai_without_assistant_turn": (
        "openai",
        {"messages": _chat(("user", "Hi"))},
        "messages has no assistant turn ('role': assistant), so there is nothing to train on",
    ),
    "alpaca_output_wrong_type": ("alpaca", {"instruction": "Hi", "output": ["Hello"]}, "output must be a string, got list"),
    "alpaca_input_wrong_type": (
        "alpaca",
        {"instruction": "Add", "input": 3, "output": "4"},
        "input must be a string, got int",
    ),
    "alpaca_empty_output": ("alpaca", {"instruction": "Hi", "output": "\n"}, "output (assistant) is empty"),
    "empty_text": ("text", {"text": " "}, "text is empty"),
    "text_wrong_type": ("text", {"text": None}, "text must be a string, got null"),
}


def _file_with_bad_row_on_line_3(tmp_path, fmt: str, bad) -> object:
    # Line 2 is blank: blank lines are skipped but still counted.
    bad = bad if isinstance(bad, (str, bytes)) else json.dumps(bad)
    bad = bad if isinstance(bad, bytes) else bad.encode()
    good = json.dumps(GOOD[fmt]).encode()
    return _write(tmp_path, good + b"\n\n" + bad + b"\n" + good + b"\n")


@pytest.mark.parametrize(("fmt", "bad", "reason"), BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_bad_row_fails_fast_with_file_line_and_reason(tmp_path, fmt, bad, reason):
    path = _file_with_bad_row_on_line_3(tmp_path, fmt, bad)
    error = _error(path)
    assert error.code == "INPUT_DATASET_INVALID"
    assert error.message == f"{path}:3: {reason}"
    assert error.exit_code == 3


@pytest.mark.parametrize(("fmt", "bad", "reason"), BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_skip_invalid_drops_only_the_bad_row_and_records_why(tmp_path, fmt, bad, reason):
    dataset = load_dataset(_file_with_bad_row_on_line_3(tmp_path, fmt, bad), skip_invalid=True)
    assert dataset.format == fmt
    assert [example.line for example in dataset.examples] == [1, 4]
    assert dataset.dropped == (Problem(3, reason),)
    assert dataset.total_rows == 3


def test_sharegpt_roles_map_to_system_user_assistant(tmp_path):
    turns = _turns(("system", "S"), ("human", "H"), ("gpt", "G"), ("user", "U"), ("assistant", "A"))
    dataset = load_dataset(_write(tmp_path, _jsonl({"conversations": turns})))
    assert dataset.format == "sharegpt"
    roles = [(message.role, message.content) for message in dataset.examples[0].messages]
    assert roles == [("system", "S"), ("user", "H"), ("assistant", "G"), ("user", "U"), ("assistant", "A")]


def test_openai_rows_keep_roles_and_ignore_extra_keys(tmp_path):
    row = {"messages": [{"role": "user", "content": "Hi", "name": "ann"}, {"role": "assistant", "content": "Yo"}], "id": 7}
    dataset = load_dataset(_write(tmp_path, _jsonl(row)))
    assert dataset.format == "openai"
    assert dataset.examples == (Example(1, messages=(Message("user", "Hi"), Message("assistant", "Yo"))),)


def test_alpaca_input_follows_instruction_after_a_blank_line(tmp_path):
    dataset = load_dataset(_write(tmp_path, _jsonl(ALPACA)))
    assert dataset.format == "alpaca"
    assert dataset.examples[0].messages == (Message("user", "Translate to French\n\ncat"), Message("assistant", "chat"))


@pytest.mark.parametrize(
    "extra", [{}, {"input": ""}, {"input": None}, {"input": "  "}], ids=["absent", "empty", "null", "blank"]
)
def test_alpaca_without_input_uses_the_instruction_alone(tmp_path, extra):
    dataset = load_dataset(_write(tmp_path, _jsonl({"instruction": "Say hi", "output": "hi", **extra})))
    assert dataset.examples[0].messages == (Message("user", "Say hi"), Message("assistant", "hi"))


def test_text_rows_keep_the_text_as_is(tmp_path):
    dataset = load_dataset(_write(tmp_path, _jsonl(TEXT, {"text": "  indented\n"})))
    assert dataset.format == "text"
    assert dataset.examples == (Example(1, text="Once upon a time"), Example(2, text="  indented\n"))


def test_alpaca_rows_with_a_text_column_are_read_as_alpaca(tmp_path):
    dataset = load_dataset(_write(tmp_path, _jsonl({**ALPACA, "text": "### Instruction: ..."})))
    assert dataset.format == "alpaca"


def test_forced_format_reads_the_rows_by_that_format(tmp_path):
    dataset = load_dataset(_write(tmp_path, _jsonl({**ALPACA, "text": "rendered"})), format="text")
    assert dataset.format == "text"
    assert dataset.examples == (Example(1, text="rendered"),)


def test_forced_format_on_a_file_of_another_format_blames_the_flag_not_the_row(tmp_path):
    path = _write(tmp_path, _jsonl(SHAREGPT))
    error = _error(path, format="alpaca")
    assert error.code == "INPUT_DATASET_FORMAT_MISMATCH"
    assert error.message == f"{path}:1 is a row in sharegpt format, but --format says the file is alpaca"


def test_unknown_format_name_is_a_config_error_listing_the_formats(tmp_path):
    error = _error(_write(tmp_path, _jsonl(TEXT)), format="csv")
    assert error.code == "CONFIG_VALUE_INVALID"
    assert error.message == "format='csv' is not valid: not a dataset format"
    assert error.fix == "use auto, sharegpt, openai, alpaca, text"


def test_the_first_valid_row_sets_the_format_not_the_first_row(tmp_path):
    bad_sharegpt = {"conversations": _turns(("human", "Hi"), ("bot", "Hello"))}
    path = _write(tmp_path, _jsonl(bad_sharegpt, ALPACA, SHAREGPT))
    dataset = load_dataset(path, skip_invalid=True)
    assert dataset.format == "alpaca"
    assert [problem.line for problem in dataset.dropped] == [1, 3]
    assert dataset.dropped[1].reason == "row is sharegpt but the file is alpaca (from line 2)"


def test_without_skip_invalid_the_first_of_several_problems_is_reported(tmp_path):
    path = _write(tmp_path, _jsonl(TEXT, "[1]", "not json"))
    assert _error(path).message == f"{path}:2: row must be a JSON object, got list"


def test_skip_invalid_with_no_valid_rows_left_fails_at_the_first_problem(tmp_path):
    path = _write(tmp_path, _jsonl("", "[1]", {"text": ""}))
    error = _error(path, skip_invalid=True)
    assert error.message == (
        f"{path}:2: no valid rows remain (2 of 2 invalid); first problem: row must be a JSON object, got list"
    )


@pytest.mark.parametrize("skip_invalid", [False, True])
@pytest.mark.parametrize(
    "content", ["", " \n\n\t\r\n", "\ufeff", "[]", " [ \n ] \n"], ids=["empty", "blank", "bom", "array", "spaced-array"]
)
def test_a_file_without_rows_is_refused_as_empty_saying_which_kind(tmp_path, content, skip_invalid):
    path = _write(tmp_path, content)
    error = _error(path, skip_invalid=skip_invalid)
    what = "it is an empty JSON array" if "[" in content else "it is empty or blank"
    assert (error.code, error.message) == ("INPUT_DATASET_EMPTY", f"dataset {path} holds no rows: {what}")


def test_missing_file_is_not_found(tmp_path):
    path = tmp_path / "nope.jsonl"
    error = _error(path)
    assert error.code == "INPUT_DATASET_NOT_FOUND"
    assert error.message == f"dataset {path} does not exist"


def test_a_directory_is_refused_by_name(tmp_path):
    error = _error(tmp_path)
    assert (error.code, error.message) == ("INPUT_DATASET_UNREADABLE", f"dataset {tmp_path} cannot be read: it is a "
                                                                      "directory")
    assert error.fix == "pass the JSONL or JSON file inside it to --data"


def test_utf8_bom_and_crlf_endings_are_accepted_and_lines_still_count(tmp_path):
    content = b"\xef\xbb\xbf" + json.dumps(TEXT).encode() + b"\r\n\r\n" + json.dumps({"text": 1}).encode() + b"\r\n"
    path = _write(tmp_path, content)
    assert _error(path).message == f"{path}:3: text must be a string, got int"
    assert load_dataset(path, skip_invalid=True).examples == (Example(1, text="Once upon a time"),)


def test_json_array_rows_carry_the_line_each_element_starts_on(tmp_path):
    content = '[\n  {"text": "a"},\n  {\n    "text": "b"\n  },\n\n  {"text": "c"}, {"text": "d"}\n]\n'
    dataset = load_dataset(_write(tmp_path, content, "data.json"))
    assert [(example.line, example.text) for example in dataset.examples] == [(2, "a"), (3, "b"), (7, "c"), (7, "d")]


def test_json_array_with_bom_and_crlf_is_accepted(tmp_path):
    content = b'\xef\xbb\xbf[\r\n  {"text": "a"},\r\n  {"text": "b"}\r\n]\r\n'
    dataset = load_dataset(_write(tmp_path, content, "data.json"))
    assert [example.line for example in dataset.examples] == [2, 3]


def test_bad_element_of_a_json_array_is_reported_at_its_line_and_can_be_skipped(tmp_path):
    path = _write(tmp_path, '[\n  {"text": "a"},\n  ["b"],\n  {"text": "c"}\n]\n', "data.json")
    assert _error(path).message == f"{path}:3: row must be a JSON object, got list"
    dataset = load_dataset(path, skip_invalid=True)
    assert [example.line for example in dataset.examples] == [2, 4]
    assert dataset.dropped == (Problem(3, "row must be a JSON object, got list"),)


@pytest.mark.parametrize(
    ("content", "line", "json_reason"),
    [
        ('[\n  {"text": "a"},\n  {"text": "b"', 3, "Expecting ',' delimiter (column 15)"),
        ('[\n  {"text": "a"}\n  {"text": "b"}\n]', 3, "Expecting ',' delimiter (column 3)"),
        ('[\n  {"text": "a"},\n]', 3, "a trailing comma before the closing ] (column 1)"),
        ('[\n  {"text": "a"}\n]\n{"text": "b"}\n', 4, "Extra data (column 1)"),
        ('[\n  {"text": "a"},\n', 3, "Expecting value (column 1)"),
    ],
    ids=["truncated", "missing-comma", "trailing-comma", "extra-data", "unclosed"],
)
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_broken_json_array_reports_jsons_line_even_with_skip_invalid(tmp_path, content, line, json_reason, skip_invalid):
    path = _write(tmp_path, content, "data.json")
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(content)  # the line json itself gives
    assert parsed.value.lineno == line
    error = _error(path, skip_invalid=skip_invalid)
    assert (error.code, error.message) == ("INPUT_DATASET_ARRAY_BROKEN", f"{path}:{line}: not a valid JSON array: "
                                                                        f"{json_reason}")
    assert error.fix.endswith("; --skip-invalid cannot skip past a broken array")


def test_jsonl_whose_first_row_is_a_list_is_still_read_as_jsonl(tmp_path):
    path = _write(tmp_path, _jsonl('["a"]', TEXT))
    assert _error(path).message == f"{path}:1: row must be a JSON object, got list"
    assert load_dataset(path, skip_invalid=True).examples == (Example(2, text="Once upon a time"),)




def test_importing_the_dataset_package_loads_no_ml_stack():
    code = "import sys, backpropagate.contract.dataset; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
