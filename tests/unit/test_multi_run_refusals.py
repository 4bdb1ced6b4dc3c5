"""`backprop multi-run` refuses what cannot make a campaign before anything is written, and names the fix."""

import json

import pytest
from backpropagate.contract.history import HistoryRow, RunHistory

from tests.conftest import run_cli


def chat_rows(path, count: int):
    """``count`` one-turn conversations in ``path``; returns it."""
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(count)))
    return path


@pytest.fixture
def rows(tmp_path):
    return chat_rows(tmp_path / "data.jsonl", 10)


def refused(tmp_path, *args):
    output = tmp_path / "out"
    result = run_cli("multi-run", "--model", "org/model", "--output", str(output), *args)
    assert result.returncode == 2, result.stderr
    assert not output.exists() or not any(output.iterdir())  # nothing half-written
    return result.stderr


def test_without_data_it_names_both_ways_to_give_it(tmp_path):
    stderr = refused(tmp_path)
    assert "[CONFIG_VALUE_INVALID]: --data=None is not valid: no dataset given" in stderr
    assert "one file to split (--data FILE --runs N) or one per run (--data A --data B)" in stderr


def test_runs_must_match_the_number_of_data_files(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--data", str(rows), "--runs", "3")
    assert "--runs=3 is not valid: 2 --data files give one run each" in stderr
    assert "use --runs 2, or leave --runs out" in stderr


def test_samples_split_one_file_only(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--data", str(rows), "--samples", "4")
    assert "--samples=4 is not valid: --samples splits one --data file into runs" in stderr


def test_a_campaign_has_at_least_two_runs(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--runs", "1")
    assert "a campaign has several runs" in stderr and "2 or more (one run is `backprop train`)" in stderr


def test_more_rows_than_the_file_holds_are_refused_with_the_most_it_can_give(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--runs", "3", "--samples", "4")
    assert "--samples=4 is not valid: 3 runs of 4 rows need 12, and" in stderr
    assert "has 10" in stderr and "use at most 3 rows per run, or fewer --runs" in stderr


def test_an_unknown_merge_is_refused(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--merge", "average")
    assert "--merge='average' is not valid: unknown merge" in stderr
    assert "use slao, none, slao-no-qr, slao-mean" in stderr


def test_eval_data_is_given_once_per_run(tmp_path, rows):
    stderr = refused(tmp_path, "--data", str(rows), "--runs", "2", "--eval-data", str(rows))
    assert "--eval-data=1 is not valid: the campaign has 2 runs" in stderr
    assert "--eval-data once per run (2 times), in run order" in stderr


def test_resume_of_a_run_that_is_no_campaign_points_at_the_run_resume(tmp_path):
    output = tmp_path / "out"
    RunHistory(output).append(HistoryRow(run_id="3f2a9c1e-run", status="failed"))
    result = run_cli("multi-run", "--resume", "3f2a", "--output", str(output))
    assert result.returncode == 2
    assert "[CONFIG_VALUE_INVALID]: --resume='3f2a' is not valid: 3f2a9c1e-run is a run, not a campaign" in result.stderr
    assert "`backprop resume 3f2a9c1e` for the run" in result.stderr


def test_flags_given_with_resume_are_reported_as_ignored(tmp_path):
    output = tmp_path / "out"
    RunHistory(output).append(HistoryRow(run_id="7c1d-campaign", status="completed", stage="campaign"))
    (output / "7c1d-campaign").mkdir()
    (output / "7c1d-campaign" / "campaign.json").write_text("{}")
    result = run_cli("multi-run", "--resume", "7c1d", "--steps", "5", "--merge", "none", "--replay", "0.2",
                     "--output", str(output), "--json")
    assert "resuming uses the campaign's own settings and data; ignored: --merge, --replay, --steps" in result.stderr
    assert "[STATE_NOTHING_TO_RESUME]: run 7c1d-campaign is completed" in result.stderr
    assert result.returncode == 6
