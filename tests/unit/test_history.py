"""run_history.json: concurrent writers lose nothing; a corrupt file is kept, never overwritten."""

import json
import multiprocessing

import pytest
from backpropagate import __version__
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.ids import new_run_id

from tests.conftest import run_cli


def _append_many(output, worker: int, count: int) -> None:
    history = RunHistory(output)
    for i in range(count):
        history.append(HistoryRow(run_id=f"w{worker}-{i}", status="completed"))


def test_eight_processes_appending_25_rows_each_leave_200_rows(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(tmp_path, w, 25)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    rows = RunHistory(tmp_path).rows()
    assert len(rows) == 200
    assert len({row.run_id for row in rows}) == 200


def test_a_missing_history_is_an_empty_list(tmp_path):
    assert RunHistory(tmp_path).rows() == []


def test_update_changes_only_the_named_run(tmp_path):
    history = RunHistory(tmp_path)
    history.append(HistoryRow(run_id="a", status="running"))
    history.append(HistoryRow(run_id="b", status="running"))
    history.update("b", status="completed", final_loss=1.5)
    assert [r.status for r in history.rows()] == ["running", "completed"]


@pytest.mark.parametrize("content, reason", [
    ("{not json", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ('{"version": 1}', "missing key 'runs'"),
    ('{"version": 1, "runs": [1, 2]}', "'runs' is not a list of runs"),
])
def test_a_corrupt_history_is_reported_kept_and_backed_up(tmp_path, content, reason):
    path = tmp_path / "run_history.json"
    path.write_text(content)
    history = RunHistory(tmp_path)
    with pytest.raises(BackpropError) as caught:
        history.append(HistoryRow(run_id="new", status="running"))
    assert caught.value.code == "STATE_HISTORY_CORRUPT" and caught.value.exit_code == 6
    assert caught.value.message == f"run history {path} is not readable: {reason}"
    assert path.read_text() == content  # not overwritten
    backups = list(tmp_path.glob("run_history.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == content
    assert caught.value.fix == f"a copy is kept at {backups[0]}; repair or remove {path}, then run again"


def test_any_unique_prefix_selects_a_run(tmp_path):
    history = RunHistory(tmp_path)
    ids = [new_run_id() for _ in range(3)]
    for run_id in ids:
        history.append(HistoryRow(run_id=run_id, status="running"))
    assert history.find(ids[1][:8]).run_id == ids[1]


def test_an_ambiguous_prefix_lists_the_candidates(tmp_path):
    history = RunHistory(tmp_path)
    history.append(HistoryRow(run_id="abc-1", status="running"))
    history.append(HistoryRow(run_id="abd-2", status="running"))
    with pytest.raises(BackpropError) as caught:
        history.find("ab")
    assert caught.value.code == "INPUT_RUN_AMBIGUOUS" and caught.value.exit_code == 3
    assert caught.value.message == "'ab' matches 2 runs: abc-1, abd-2"
    assert caught.value.fix == "give more characters of the run id"


def test_a_run_id_that_is_the_prefix_of_another_still_selects_itself(tmp_path):
    history = RunHistory(tmp_path)
    history.append(HistoryRow(run_id="abc", status="completed"))
    history.append(HistoryRow(run_id="abcd", status="failed"))
    assert history.find("abc").run_id == "abc"  # the exact id wins over the prefix of the other
    assert history.find("abcd").run_id == "abcd"
    with pytest.raises(BackpropError) as caught:
        history.find("ab")
    assert caught.value.code == "INPUT_RUN_AMBIGUOUS"


def test_an_unknown_prefix_says_where_it_looked(tmp_path):
    history = RunHistory(tmp_path)
    history.append(HistoryRow(run_id="abc-1", status="running"))
    with pytest.raises(BackpropError) as caught:
        history.find("zz")
    assert caught.value.code == "INPUT_RUN_NOT_FOUND" and caught.value.exit_code == 3
    assert caught.value.message == f"no run matches 'zz' in {tmp_path / 'run_history.json'}"
    assert caught.value.fix == f"list the runs with `backprop list-runs --output {tmp_path}`"


def test_history_is_valid_json_with_one_row_per_run(tmp_path):
    RunHistory(tmp_path).append(HistoryRow(run_id="x", status="running"))
    document = json.loads((tmp_path / "run_history.json").read_text())
    assert document == {"version": 1, "runs": [{"run_id": "x", "status": "running", "stage": "train"}]}


def test_a_row_keeps_fields_it_does_not_know_and_leaves_unset_ones_out(tmp_path):
    (tmp_path / "run_history.json").write_text(json.dumps(
        {"version": 1, "runs": [{"run_id": "x", "status": "completed", "from_a_newer_version": [1]}]}))
    history = RunHistory(tmp_path)
    history.update("x", final_loss=0.5)
    document = json.loads((tmp_path / "run_history.json").read_text())
    assert document["runs"] == [{"run_id": "x", "status": "completed", "stage": "train", "final_loss": 0.5,
                                 "from_a_newer_version": [1]}]
    assert history.find("x").final_loss == 0.5


@pytest.mark.parametrize("row, reason", [
    ({"run_id": None, "status": "completed"}, "runs[1].run_id: expected text, got NoneType None"),
    ({"run_id": "b", "status": 5, "steps": "ten", "warnings": 3},
     "runs[1].status: expected text, got int 5; runs[1].steps: expected an integer, got str 'ten'; "
     "runs[1].warnings: expected a list, got int 3"),
])
@pytest.mark.parametrize("command", [["list-runs"], ["show-run", "a"], ["resume", "a"], ["export-runs"]])
def test_a_row_with_a_field_of_the_wrong_type_is_a_coded_error_in_every_command(tmp_path, row, reason, command):
    from tests.conftest import run_cli

    path = tmp_path / "run_history.json"
    path.write_text(json.dumps({"version": 1, "runs": [{"run_id": "a", "status": "completed"}, row]}))
    before = path.read_bytes()
    result = run_cli(*command, "--output", str(tmp_path), timeout=30)
    assert result.returncode == 6, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-2]
    assert message == f"[STATE_HISTORY_CORRUPT]: run history {path} is not readable: {reason}"
    assert path.read_bytes() == before


def test_a_history_nested_100000_deep_is_corrupt_not_a_recursion_error(tmp_path):
    (tmp_path / "run_history.json").write_text('{"version": 1, "runs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BackpropError) as caught:
        RunHistory(tmp_path).rows()
    assert caught.value.code == "STATE_HISTORY_CORRUPT"
    assert caught.value.message.endswith("is not readable: nested 100,001 levels deep, over the limit of 64")


@pytest.mark.parametrize("document, reason", [
    ({"version": 99, "runs": [{"run_id": "x", "status": "completed"}]}, "format version 99"),
    ({"version": 1, "runs": [{"run_id": "x", "status": "completed"}], "campaigns": []},
     "it has field 'campaigns', unknown to format version 1"),
])
def test_a_history_from_a_newer_version_is_refused_and_left_byte_identical(tmp_path, document, reason):
    path = tmp_path / "run_history.json"
    path.write_text(json.dumps(document, indent=3))
    before = path.read_bytes()
    for command in (["list-runs"], ["export-runs"], ["show-run", "x"]):
        result = run_cli(*command, "--output", str(tmp_path))
        assert result.returncode == 6 and "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [
            f"[STATE_HISTORY_NEWER]: run history {path} was written by a newer backpropagate ({reason}); this one "
            f"({__version__}) reads format version 1",
            f"  fix: upgrade backpropagate (pip install -U backpropagate), or move {path} aside to start a new "
            "history here"]
    with pytest.raises(BackpropError) as caught:
        RunHistory(tmp_path).update("x", final_loss=0.5)
    assert caught.value.code == "STATE_HISTORY_NEWER"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_history.json", "run_history.json.lock"]


@pytest.mark.parametrize("version", [0, "1", True, None])
def test_a_history_whose_version_is_not_a_format_version_is_corrupt(tmp_path, version):
    (tmp_path / "run_history.json").write_text(json.dumps({"version": version, "runs": []}))
    with pytest.raises(BackpropError) as caught:
        RunHistory(tmp_path).rows()
    assert caught.value.code == "STATE_HISTORY_CORRUPT"
    assert f"'version' is {version!r}, not a format version" in caught.value.message
