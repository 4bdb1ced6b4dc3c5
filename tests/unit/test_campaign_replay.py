"""`multi-run --replay`: each run's data file is its own rows, then rows of earlier runs drawn from the seed,
recorded beside it; as many as its own by default, and none with 0. Planning reads no model, so
these run the real planner on rows and a model name, without training."""

import json

import pytest
from backpropagate.contract.campaign import CampaignFolder
from backpropagate.contract.errors import BackpropError
from backpropagate.options import settings_from_arguments
from backpropagate.runs.campaign_plan import plan_campaign

from tests.conftest import run_cli
from tests.unit.test_multi_run_refusals import chat_rows


@pytest.fixture
def rows(tmp_path):
    return chat_rows(tmp_path / "data.jsonl", 40)


def planned(output, data, **arguments):
    """The campaign's folder and each run's data file as lines, planned as `multi-run --runs 3 --samples 10`."""
    settings = settings_from_arguments({"model": "org/model", "output": str(output), **arguments},
                                       call="Trainer.multi_run()", campaign=True)
    plan, folder, _ = plan_campaign(settings, [data], 3, 10, "slao")
    return plan, folder, [folder.run_data(i).read_text().splitlines() for i in (1, 2, 3)]


def record(folder: CampaignFolder, index: int) -> dict:
    return json.loads(folder.run_replayed(index).read_text())


def test_a_replaying_runs_data_file_is_its_own_rows_then_the_recorded_rows_of_earlier_runs_only(tmp_path, rows):
    plan, folder, files = planned(tmp_path / "out", rows, replay_fraction=0.5)
    _, _, without = planned(tmp_path / "plain", rows, replay_fraction=0.0)
    assert files[0] == without[0] and not folder.run_replayed(1).exists()  # run 1 has nothing to replay
    for index in (2, 3):
        own, replayed = files[index - 1][:10], files[index - 1][10:]
        assert own == without[index - 1]  # its own rows first, as without replay
        found = record(folder, index)
        assert found["fraction"] == 0.5 and found["own_rows"] == 10 and found["rows"] == len(replayed) == 5
        assert [r["at_line"] for r in found["replayed"]] == list(range(11, 16))
        assert all(r["run"] < index for r in found["replayed"])  # earlier runs only
        # each replayed line is the cited line of the cited earlier run's file, byte for byte
        assert replayed == [files[r["run"] - 1][r["line"] - 1] for r in found["replayed"]]
        assert all(r["line"] <= 10 for r in found["replayed"])  # an earlier run's own rows, not what it replayed
    assert record(folder, 2)["from_runs"] == {"1": 5}
    assert record(folder, 3)["from_runs"] == {"1": 3, "2": 2}  # shared evenly, the earliest taking the odd one
    assert plan.replay_fraction == 0.5 and "also replays 0.5 x its rows" in plan.drawing


def test_the_same_seed_replays_the_same_rows_and_another_seed_others(tmp_path, rows):
    _, first, files = planned(tmp_path / "a", rows, replay_fraction=0.5, seed=7)
    _, again, same = planned(tmp_path / "b", rows, replay_fraction=0.5, seed=7)
    _, other, different = planned(tmp_path / "c", rows, replay_fraction=0.5, seed=8)
    assert same == files and record(again, 3)["replayed"] == record(first, 3)["replayed"]
    assert different != files and record(other, 3)["replayed"] != record(first, 3)["replayed"]


def test_by_default_each_run_replays_as_many_earlier_rows_as_it_has_of_its_own(tmp_path, rows):
    plan, folder, files = planned(tmp_path / "out", rows)
    assert plan.replay_fraction == 1.0 and [len(f) for f in files] == [10, 20, 20]
    assert record(folder, 2)["from_runs"] == {"1": 10} and record(folder, 3)["from_runs"] == {"1": 5, "2": 5}


def test_replay_zero_trains_each_run_on_its_own_rows_only(tmp_path, rows):
    plan, folder, files = planned(tmp_path / "zero", rows, replay_fraction=0.0)
    default, _, replaying = planned(tmp_path / "default", rows)
    assert files == [f[:10] for f in replaying]  # the same rows of its own, and nothing after them
    assert not list(folder.data.glob("*.replayed.json")) and plan.key != default.key
    written = json.loads(folder.plan.read_text())
    assert "replay_fraction" not in written  # campaign.json as it was before replay existed


def test_a_replaying_campaign_is_another_campaign_than_one_without(tmp_path, rows):
    plan, _, _ = planned(tmp_path / "out", rows, replay_fraction=0.0)
    replaying, _, _ = planned(tmp_path / "out", rows, replay_fraction=0.25)
    assert replaying.campaign_id != plan.campaign_id and replaying.key != plan.key


def test_each_earlier_run_keeps_a_buffer_of_at_most_1000_rows_that_every_later_run_replays_from():
    from backpropagate.runs.campaign_replay import replayed_rows

    parts = [[f"run{run}-row{row}" for row in range(1500)] for run in (1, 2, 3)]
    chosen = replayed_rows(parts, 1.0, seed=42)
    assert len(chosen[1]) == 1000  # 1500 wanted from run 1, whose buffer holds 1000 of its rows
    buffer = {line for run, line in chosen[1]}
    from_run_one_later = {line for run, line in chosen[2] if run == 1}
    assert len(from_run_one_later) == 750 and from_run_one_later <= buffer  # run 3 draws from the same buffer
    assert len({line for run, line in chosen[2] if run == 2}) == 750


def refused(tmp_path, rows, *args) -> str:
    output = tmp_path / "out"
    result = run_cli("multi-run", "--data", str(rows), "--model", "org/model", "--output", str(output), *args)
    assert result.returncode == 2, result.stderr
    assert not output.exists() or not any(output.iterdir())  # nothing half-written
    return result.stderr


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_a_replay_fraction_outside_0_to_1_is_refused(tmp_path, rows, value):
    stderr = refused(tmp_path, rows, "--replay", value)
    assert f"[CONFIG_VALUE_INVALID]: --replay={float(value)!r} is not valid: must be from 0.0 to 1.0" in stderr
    assert "use a fraction from 0 to 1, such as 0.2" in stderr


def test_with_eval_split_each_runs_held_out_rows_are_set_aside_before_any_row_is_replayed(tmp_path, rows):
    plan, folder, files = planned(tmp_path / "out", rows, eval_split=0.2)
    held = [folder.run_held_out(i).read_text().splitlines() for i in (1, 2, 3)]
    assert [len(h) for h in held] == [2, 2, 2] and [len(f) for f in files] == [8, 16, 16]
    every_held = {row for rows_held in held for row in rows_held}
    assert not every_held & {row for file in files for row in file}  # no run trains on a held-out row
    # each run is measured on its own held-out file; the stage splits nothing more off
    assert [run["eval_data"].path for run in plan.runs] == [str(folder.run_held_out(i)) for i in (1, 2, 3)]
    assert plan.training.eval_split == 0.0 and "0.2 of each run's rows held out before replay" in plan.drawing
    again, _, _ = planned(tmp_path / "out", rows, eval_split=0.2)
    assert again.campaign_id == plan.campaign_id  # the same flags find the same unfinished campaign


def test_without_replay_eval_split_is_left_to_the_stage(tmp_path, rows):
    plan, folder, files = planned(tmp_path / "out", rows, eval_split=0.2, replay_fraction=0.0)
    assert plan.training.eval_split == 0.2 and [len(f) for f in files] == [10, 10, 10]
    assert not list(folder.data.glob("*.held-out.jsonl")) and all(run["eval_data"] is None for run in plan.runs)


def test_eval_split_on_a_run_of_one_row_is_refused_before_anything_is_written(tmp_path):
    one = tmp_path / "one.jsonl"
    chat_rows(one, 1)
    output = tmp_path / "out"
    result = run_cli("multi-run", "--data", str(one), "--data", str(one), "--model", "org/model", "--output",
                     str(output), "--eval-split", "0.1")
    stderr = result.stderr
    assert result.returncode == 3
    assert not output.exists() or not any(output.iterdir())  # nothing half-written
    assert "[INPUT_EVAL_SPLIT_TOO_FEW]: --eval-split 0.1 holds out rows of" in stderr and "(run 1)" in stderr


def test_replay_is_a_campaign_option_only(tmp_path, rows):
    train = run_cli("train", "--data", str(rows), "--model", "org/model", "--replay", "0.2")
    assert train.returncode == 2 and "No such option: --replay" in train.stderr
    assert "--replay" in run_cli("multi-run", "--help").stdout and "--replay" not in run_cli("train", "--help").stdout

    from backpropagate import Trainer

    trainer = Trainer("org/model", replay_fraction=0.2, output=str(tmp_path / "out"))
    with pytest.raises(BackpropError) as refusal:
        trainer.train(rows)
    assert refusal.value.code == "CONFIG_ARGUMENT_UNKNOWN" and "replay_fraction" in refusal.value.message
    with pytest.raises(BackpropError) as bad:
        Trainer("org/model", replay_fraction=2)
    assert bad.value.render().startswith("[CONFIG_VALUE_INVALID]: replay_fraction=2 is not valid")


def test_the_environment_variable_sets_it_and_a_bad_one_is_refused(tmp_path, rows):
    from backpropagate.config import load_settings

    assert load_settings({"BACKPROPAGATE_CAMPAIGN__REPLAY_FRACTION": "0.3"}).campaign.replay_fraction == 0.3
    with pytest.raises(BackpropError) as refusal:
        load_settings({"BACKPROPAGATE_CAMPAIGN__REPLAY_FRACTION": "-1"})
    assert refusal.value.code == "CONFIG_ENV_INVALID"
