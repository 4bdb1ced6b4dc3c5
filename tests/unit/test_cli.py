"""The host CLI: instant start-up, only built commands, errors printed once with a code."""

import json
import subprocess
import sys

from tests.conftest import run_cli

HEAVY = ("torch", "transformers", "peft", "docker", "datasets", "rich.progress", "jinja2",
         "starlette", "uvicorn", "multipart", "backpropagate.ui")  # the web UI loads only in `backprop ui`


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from backpropagate.app import app\n"
        "try:\n    app(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_importing_the_package_and_the_api_loads_no_ml_stack():
    code = ("import sys, backpropagate\nfrom backpropagate import Trainer\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_exactly_the_built_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    panels = result.stdout.split("\nTrain:\n")[1]  # then "Export and share:", "Runs:", "Set-up:"
    listed = {line.split()[0] for line in panels.splitlines() if line.startswith("  ") and line[2] != " "}
    assert listed == {"train", "resume", "multi-run", "export", "chat", "eval", "validate", "plan", "presets",
                      "list-runs", "show-run", "diff-runs", "replay", "export-runs", "info", "ollama", "images", "ui",
                      "push", "k8s"}


def test_version_prints_the_package_version():
    from backpropagate import __version__

    assert run_cli("--version").stdout.strip() == f"backpropagate {__version__}"


def test_a_missing_dataset_is_a_coded_error_without_traceback(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "nope.jsonl"), "--model", "org/m",
                     "--output", str(tmp_path))
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"[INPUT_DATASET_NOT_FOUND]: dataset {tmp_path / 'nope.jsonl'} does not exist",
        "  fix: check the path given to --data",
    ]


def test_a_model_path_that_does_not_exist_is_refused_before_a_run_starts(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    result = run_cli("train", "--data", str(data), "--model", "./no/such/model", "--output", str(tmp_path / "out"))
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "[INPUT_MODEL_NOT_FOUND]: model ./no/such/model is neither a local folder nor a hub id",
        "  fix: pass a folder made with save_pretrained, or a hub id such as Qwen/Qwen2.5-0.5B-Instruct",
    ]
    assert not (tmp_path / "out" / "run_history.json").exists()


def test_qlora_on_cpu_is_refused_as_a_flag_conflict(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    result = run_cli("train", "--data", str(data), "--model", "org/m", "--qlora", "--device", "cpu",
                     "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "[CONFIG_QLORA_NEEDS_CUDA]: QLoRA loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU",
        "  fix: drop --qlora to train in full precision on the CPU, or run on a machine with an NVIDIA GPU",
    ]


def test_verbose_adds_the_traceback(tmp_path):
    result = run_cli("--verbose", "train", "--data", str(tmp_path / "nope.jsonl"), "--model", "org/m")
    assert "Traceback" in result.stderr and "[INPUT_DATASET_NOT_FOUND]" in result.stderr


def test_list_runs_on_an_empty_workspace_is_an_empty_list(tmp_path):
    result = run_cli("list-runs", "--output", str(tmp_path), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"result": {"runs": []}}


def test_list_runs_reports_a_corrupt_history_and_keeps_it(tmp_path):
    (tmp_path / "run_history.json").write_text("{oops")
    result = run_cli("list-runs", "--output", str(tmp_path))
    history = tmp_path / "run_history.json"
    assert result.returncode == 6
    [backup] = tmp_path.glob("run_history.json.corrupt-*")
    assert result.stderr.splitlines() == [
        f"[STATE_HISTORY_CORRUPT]: run history {history} is not readable: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        f"  fix: a copy is kept at {backup}; repair or remove {history}, then run again",
    ]
    assert history.read_text() == "{oops" and backup.read_text() == "{oops"


def test_validate_reports_format_and_counts(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "add", "input": "1+1", "output": "2"}\n'
                    '{"instruction": "sub", "output": "0"}\n')
    result = run_cli("validate", "--data", str(data), "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)["result"]
    assert (report["format"], report["rows"], report["valid"], report["invalid"]) == ("alpaca", 2, 2, 0)


def test_validate_lists_every_problem_and_fails_without_skip_invalid(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "ok"}\n{"text": ""}\n{"text": 3}\n')
    result = run_cli("validate", "--data", str(data))
    assert result.returncode == 3
    assert "line 2: text is empty" in result.stdout and "line 3: text must be a string, got int" in result.stdout
    assert result.stderr.splitlines() == [
        f"[INPUT_DATASET_INVALID]: {data}:2: text is empty (2 invalid rows in all)",
        "  fix: fix that row, or pass --skip-invalid to train on the valid rows only",
    ]
    assert run_cli("validate", "--data", str(data), "--skip-invalid").returncode == 0


def test_log_json_in_the_environment_makes_json_the_default(tmp_path):
    result = run_cli("list-runs", "--output", str(tmp_path), env={"BACKPROPAGATE_LOG_JSON": "1"})
    assert json.loads(result.stdout) == {"result": {"runs": []}}
    flag_wins = run_cli("list-runs", "--output", str(tmp_path), "--no-json", env={"BACKPROPAGATE_LOG_JSON": "1"})
    assert flag_wins.stdout.startswith("no runs recorded")


def test_info_reports_versions_and_every_runtime(tmp_path):
    result = run_cli("info", "--json", "--output", str(tmp_path))
    assert result.returncode == 0
    report = json.loads(result.stdout)["result"]
    from backpropagate import __version__

    assert report["backpropagate"] == __version__
    assert set(report["runtimes"]) == {"docker", "local", "ray"}
    assert report["runtime_auto"]["choice"] in ("docker", "local", None)
    assert report["devices"]["cpu"] is True


def test_a_corrupt_history_stops_training_before_a_run_folder_is_made(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "run_history.json").write_text("[broken")
    result = run_cli("train", "--data", str(data), "--model", "org/m", "--output", str(out))
    assert result.returncode == 6
    assert result.stderr.startswith("[STATE_HISTORY_CORRUPT]")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("run_history.json")) == []
    assert (out / "run_history.json").read_text() == "[broken"


def test_an_unknown_flag_is_a_usage_error_without_traceback():
    result = run_cli("train", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr and "Traceback" not in result.stderr


def test_a_choice_outside_the_list_is_a_usage_error_naming_the_choices():
    result = run_cli("export", "abc", "--dtype", "fp8")
    assert result.returncode == 2
    assert "'fp8' is not one of 'float16'" in result.stderr and "Traceback" not in result.stderr
