"""The UI's Stop button means Ctrl-C: the step in flight finishes, a checkpoint is saved when asked, the run is
`interrupted`, and its page's Resume runs `backprop resume` on it, which finishes every step. The app is driven
in-process (Starlette's TestClient); its runs are the real CLI on the local runtime with the tiny model."""

import json
import re
import shutil
import time
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.history import RunHistory
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

from tests.conftest import ROOT

STEPS = 5  # stopped as soon as step 1 is reported, so a few are left for the resume


def test_stop_interrupts_the_run_like_ctrl_c_and_resume_from_its_page_completes_every_step(tiny_model, tmp_path):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "datasets").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "quickstart.jsonl", root / "datasets")
    app = create_app(UiConfig(sandbox=Sandbox(root), credentials=None, runtime="local"))
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/runs/new").text).group(1)
    started = client.post("/runs/new", data={
        "csrf": token, "dataset": "quickstart.jsonl", "model": "models/tiny", "steps": str(STEPS), "device": "cpu",
        "runtime": "local", "checkpoint_every": "0", "checkpoint_on_interrupt": "on"})
    assert started.status_code == 303, started.text
    run_id = started.headers["location"].rsplit("/", 1)[1]
    events = root / run_id / "events.jsonl"
    deadline = time.time() + 120
    while '"progress"' not in (events.read_text() if events.exists() else "") and time.time() < deadline:
        time.sleep(0.2)
    assert 'action="/runs/' + run_id + '/stop"' in client.get(f"/runs/{run_id}").text
    assert client.post(f"/runs/{run_id}/stop", data={"csrf": token}).status_code == 303
    job = app.state.jobs.latest(run_id, "train")
    assert job.done.wait(timeout=120)
    assert job.process.returncode == 130 and job.error["code"] == "RUNTIME_INTERRUPTED"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    last_step = max(e["step"] for e in lines if e["event"] == "progress")
    assert [e["step"] for e in lines if e["event"] == "checkpoint"] == [last_step]
    assert RunHistory(root).get(run_id).status == "interrupted"
    page = client.get(f"/runs/{run_id}").text
    assert "interrupted" in page and f"step-{last_step}" in page and "/stop" not in page
    assert '<span id="status" class="status-interrupted">stopped</span>' in page and 'class="error"' not in page
    assert f'id="stopped">Stopped on request at step {last_step}: ' in page
    assert 'action="/runs/' + run_id + '/resume"' in page

    assert client.post(f"/runs/{run_id}/resume", data={}).status_code == 403  # no CSRF token: refused
    assert app.state.jobs.active(run_id) is None
    resumed = client.post(f"/runs/{run_id}/resume", data={"csrf": token})
    assert resumed.status_code == 303 and resumed.headers["location"] == f"/runs/{run_id}"
    following = client.get(f"/runs/{run_id}").text
    assert 'data-live="1"' in following and 'action="/runs/' + run_id + '/stop"' in following
    assert 'id="stopped"' not in following and '/resume"' not in following
    job = app.state.jobs.latest(run_id, "train")
    assert job.done.wait(timeout=180) and job.process.returncode == 0, "".join(job.stderr_tail)
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    steps = [e["step"] for e in lines if e["event"] == "progress" and e["stage"] == "train"]
    assert steps == list(range(1, STEPS + 1))  # the resumed half starts after the checkpoint, none repeated
    assert RunHistory(root).get(run_id).status == "completed"
    page = client.get(f"/runs/{run_id}").text
    assert '<span id="status" class="status-completed">' in page
    assert 'id="stopped"' not in page and '/resume"' not in page and 'class="error"' not in page
