"""A campaign started from the new-run form: one run per picked dataset, in the order picked, with the form's
settings for each, followed on the campaign page until it ends. The app is driven in-process (Starlette's
TestClient); the campaign is the real `backprop multi-run` on the local runtime with the tiny model (2 runs of
2 steps)."""

import re
import shutil
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.files import sha256_file
from backpropagate.contract.history import RunHistory
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

from tests.conftest import ROOT

SETTINGS = {"model": "models/tiny", "steps": "2", "device": "cpu", "runtime": "local", "checkpoint_every": "0",
            "max_seq_length": "64", "batch_size": "2", "gradient_accumulation": "2"}


def test_a_campaign_of_two_picked_datasets_runs_one_after_the_other_and_its_page_follows_it(tiny_model, tmp_path):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "datasets").mkdir(parents=True)
    rows = (ROOT / "examples" / "quickstart.jsonl").read_text().splitlines(keepends=True)
    (root / "datasets" / "week1.jsonl").write_text("".join(rows[: len(rows) // 2]))
    (root / "datasets" / "week2.jsonl").write_text("".join(rows[len(rows) // 2:]))
    app = create_app(UiConfig(sandbox=Sandbox(root), credentials=None, runtime="local"))
    client = TestClient(app, follow_redirects=False)
    form = client.get("/runs/new").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    assert 'formaction="/campaigns/new"' in form and 'name="campaign_data" multiple' in form

    one = client.post("/campaigns/new", data={"csrf": token, **SETTINGS, "campaign_data": ["week1.jsonl"]})
    assert one.status_code == 400 and "Pick two or more different datasets" in one.text
    started = client.post("/campaigns/new", data={"csrf": token, **SETTINGS, "campaign_merge": "slao",
                                                  "campaign_data": ["week2.jsonl", "week1.jsonl"]})
    assert started.status_code == 303, started.text
    campaign_id = started.headers["location"].rsplit("/", 1)[1]
    following = client.get(f"/campaigns/{campaign_id}").text
    assert '<meta http-equiv="refresh" content="3">' in following and 'id="following"' in following

    first_run = RunHistory(root).get(campaign_id).campaign_runs[0]  # the job is known by its first run's events
    job = app.state.jobs.latest(first_run, "campaign")
    assert job.done.wait(timeout=300) and job.process.returncode == 0, "".join(job.stderr_tail)
    history = RunHistory(root)
    campaign = history.get(campaign_id)
    assert campaign.stage == "campaign" and campaign.status == "completed" and campaign.merge == "slao"
    runs = [history.get(run_id) for run_id in campaign.campaign_runs]
    assert [run.dataset_sha256 for run in runs] == [sha256_file(root / "datasets" / name)
                                                    for name in ("week2.jsonl", "week1.jsonl")]
    assert [(run.status, run.steps_done) for run in runs] == [("completed", 2), ("completed", 2)]
    page = client.get(f"/campaigns/{campaign_id}").text
    assert "refresh" not in page and page.count('<td class="status-completed">completed</td>') == 2
