"""With --json, a failure is one JSON object on stdout's result line (code, message, fix, run id, exit code),
where a success puts its result; stderr still carries the `[CODE]: message` and fix for people."""

import json

from tests.conftest import run_cli


def test_a_failure_with_json_is_one_object_with_the_code_and_the_fix(tmp_path):
    result = run_cli("train", "--json", "--model", "m", "--output", str(tmp_path))
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    failure = json.loads(lines[0])["error"]
    assert failure == {"code": "CONFIG_VALUE_INVALID", "message": "--data=None is not valid: no dataset given",
                       "fix": failure["fix"], "run_id": None, "exit_code": 2}
    assert failure["fix"] == "use a JSONL or JSON file (or --resume RUN to continue a run)" and result.returncode == 2
    assert result.stderr.startswith("[CONFIG_VALUE_INVALID]: --data")


def test_a_flag_value_refused_while_parsing_is_reported_the_same_way(tmp_path):
    result = run_cli("train", "--json", "--steps", "many", "--output", str(tmp_path))
    failure = json.loads(result.stdout.splitlines()[-1])["error"]
    assert (failure["code"], failure["exit_code"], result.returncode) == ("CONFIG_VALUE_INVALID", 2, 2)
    assert "--steps" in failure["message"] and failure["fix"]


def test_without_json_stdout_stays_empty_on_a_failure(tmp_path):
    result = run_cli("train", "--model", "m", "--output", str(tmp_path))
    assert result.stdout == "" and result.stderr.startswith("[CONFIG_VALUE_INVALID]") and result.returncode == 2


def test_the_environment_asks_for_json_too(tmp_path):
    result = run_cli("train", "--model", "m", "--output", str(tmp_path), env={"BACKPROPAGATE_LOG_JSON": "1"})
    assert json.loads(result.stdout)["error"]["code"] == "CONFIG_VALUE_INVALID"
