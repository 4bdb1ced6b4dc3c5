"""A run that fails after it started: --json's failure object names the run, as its events and history row do."""

import json

from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli


def test_a_failed_run_reports_its_run_id_code_and_fix_on_the_result_line(tmp_path, tiny_model):
    result = run_cli("train", "--json", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--model",
                     str(tiny_model), "--steps", "1", "--device", "cuda", "--output", str(tmp_path))
    *events, last = result.stdout.splitlines()
    failure = json.loads(last)["error"]
    run_id = json.loads(events[0])["run_id"]
    assert failure["run_id"] == run_id and failure["code"] == "DEP_GPU_NOT_AVAILABLE"
    assert failure["fix"].startswith("pass --device cpu") and failure["exit_code"] == result.returncode == 4
    assert RunHistory(tmp_path).get(run_id).error_code == "DEP_GPU_NOT_AVAILABLE"
