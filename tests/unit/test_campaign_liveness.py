"""A campaign's liveness comes from its holder's lock, as a run's does: `running` while the process that runs it
(`multi-run`, or `resume` of it) lives, `dead` once no process holds it."""

import json

from backpropagate.contract.campaign import CampaignFolder
from filelock import FileLock

from tests.conftest import run_cli


def statuses(output):
    listed = run_cli("list-runs", "--output", str(output), "--json")
    assert listed.returncode == 0, listed.stderr
    return [row["status"] for row in json.loads(listed.stdout)["result"]["runs"]]


def test_a_campaign_held_by_a_live_process_is_running_and_dead_once_no_one_holds_it(tmp_path):
    (tmp_path / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": "c0ffee", "status": "running", "stage": "campaign", "campaign_runs": []}]}))
    folder = CampaignFolder.of(tmp_path, "c0ffee")
    folder.root.mkdir()
    with FileLock(str(folder.lock), timeout=0):  # this test process stands for the multi-run that runs it
        assert statuses(tmp_path) == ["running"]
        shown = run_cli("show-run", "c0ffee", "--output", str(tmp_path)).stdout
        assert shown.splitlines()[0] == "campaign c0ffee  running"
    assert statuses(tmp_path) == ["dead"]
    shown = run_cli("show-run", "c0ffee", "--output", str(tmp_path)).stdout
    assert shown.splitlines()[0] == "campaign c0ffee  dead"
