"""A run that fails after it started: --json's failure object names the run, as its events and history row do."""

import json

from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli


def test_a_failed_run_reports_its_run_id_code_and_fix_on_the_result_line(tmp_path, tiny_model):
    # Adam at a learning rate of 1e20 overflows on the first update: the loss is nan at step 2.
    result = run_cli("train", "--json", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--model",
                     str(tiny_model), "--steps", "4", "--device", "cpu", "--learning-rate", "1e20", "--warmup-steps",
                     "0", "--lr-scheduler", "constant", "--output", str(tmp_path))
    *events, last = result.stdout.splitlines()
    failure = json.loads(last)["error"]
    run_id = json.loads(events[0])["run_id"]
    assert failure["run_id"] == run_id and failure["code"] == "RUNTIME_TRAINING_DIVERGED"
    assert failure["fix"] and failure["exit_code"] == result.returncode == 5
    assert RunHistory(tmp_path).get(run_id).error_code == "RUNTIME_TRAINING_DIVERGED"
