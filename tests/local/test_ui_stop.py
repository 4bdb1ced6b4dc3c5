"""The UI's Stop button means Ctrl-C: the step in flight finishes, a checkpoint is saved when asked, the run is
`interrupted`, and its page's Resume runs `backprop resume` on it, which finishes every step. Debian's chromium
(Playwright) clicks the page's own buttons of a real `backprop ui` process; its runs are the real CLI on the
local runtime with the tiny model."""

import json
import re
import shutil
import urllib.error
import urllib.request

import pytest
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT
from tests.web_ui import serve_ui

STEPS = 40  # stopped as soon as step 1 is drawn: steps of a fraction of a second each leave most for the resume
SHORT_STEPS = {"max_seq_length": "64", "batch_size": "2", "gradient_accumulation": "2"}  # a quick first step


def test_stop_interrupts_the_run_like_ctrl_c_and_resume_from_its_page_completes_every_step(tiny_model, tmp_path,
                                                                                              browser):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "datasets").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "quickstart.jsonl", root / "datasets")
    with serve_ui(tmp_path, "--output", str(root), "--runtime", "local") as url:  # this machine only: no login
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url + "/runs/new")
        page.select_option("select[name=dataset]", "quickstart.jsonl")
        page.fill("input[name=model]", "models/tiny")
        page.fill("input[name=steps]", str(STEPS))
        page.select_option("select[name=device]", "cpu")
        page.select_option("select[name=runtime]", "local")
        page.fill("input[name=checkpoint_every]", "0")
        for name, value in SHORT_STEPS.items():
            page.fill(f"input[name={name}]", value)
        page.select_option("select[name=checkpoint_on_interrupt]", "on")
        page.click("#start")
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=60_000)
        run_id = page.url.rsplit("/", 1)[1]
        events = root / run_id / "events.jsonl"
        page.wait_for_selector("#chart circle.point[data-step='1']", timeout=120_000)
        assert page.get_attribute("#stop", "action") == f"/runs/{run_id}/stop"
        page.click("#stop button")
        page.wait_for_selector("#resume", timeout=120_000)  # the page renders the stopped run once it has ended

        lines = [json.loads(line) for line in events.read_text().splitlines()]
        assert [e["code"] for e in lines if e["event"] == "error"] == ["RUNTIME_INTERRUPTED"]
        last_step = max(e["step"] for e in lines if e["event"] == "progress")
        assert last_step < STEPS, "the run ended before Stop: slow it down"
        assert [e["step"] for e in lines if e["event"] == "checkpoint"] == [last_step]
        stopped = RunHistory(root).get(run_id)
        assert stopped.status == "interrupted" and stopped.error_code == "RUNTIME_INTERRUPTED"
        html = page.content()
        assert "interrupted" in html and f"step-{last_step}" in html and "/stop" not in html
        assert '<span id="status" class="status-interrupted">stopped</span>' in html and 'class="error"' not in html
        assert f'id="stopped">Stopped on request at step {last_step}: ' in html
        assert page.get_attribute("#resume", "action") == f"/runs/{run_id}/resume"

        with pytest.raises(urllib.error.HTTPError) as refused:  # no CSRF token: refused, nothing started
            urllib.request.urlopen(urllib.request.Request(f"{url}/runs/{run_id}/resume", data=b"", method="POST"))
        assert refused.value.code == 403
        page.reload()
        assert page.get_attribute("#progress", "data-live") == "0" and page.query_selector("#resume")
        page.click("#resume button")
        page.wait_for_load_state()
        assert page.url == f"{url}/runs/{run_id}"
        following = page.content()
        assert 'data-live="1"' in following and f'action="/runs/{run_id}/stop"' in following
        assert 'id="stopped"' not in following and '/resume"' not in following
        page.wait_for_selector("#status.status-completed", timeout=180_000)

        lines = [json.loads(line) for line in events.read_text().splitlines()]
        steps = [e["step"] for e in lines if e["event"] == "progress" and e["stage"] == "train"]
        assert steps == list(range(1, STEPS + 1))  # the resumed half starts after the checkpoint, none repeated
        assert RunHistory(root).get(run_id).status == "completed"
        html = page.content()
        assert 'id="stopped"' not in html and '/resume"' not in html and 'class="error"' not in html

        # Replay: a new run with the finished run's model, data and settings, followed on its own page.
        page.click("#replay button")
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=60_000)
        replay_id = page.url.rsplit("/", 1)[1]
        assert replay_id != run_id
        page.wait_for_selector("#status.status-completed", timeout=180_000)
        original, replayed = RunHistory(root).get(run_id), RunHistory(root).get(replay_id)
        assert (replayed.model, replayed.dataset_sha256, replayed.steps) == \
            (original.model, original.dataset_sha256, original.steps)
        assert replayed.replay_of == run_id
