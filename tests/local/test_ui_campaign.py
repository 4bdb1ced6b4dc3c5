"""A campaign started from the new-run form: one run per picked dataset, in the order listed, with the form's
settings for each, followed on the campaign page until it ends, which fits a phone's 390 px (a screenshot in the
test's tmp folder, or in $UI_SCREENSHOTS). Debian's chromium (Playwright) fills and submits the form of a real
`backprop ui` process; the campaign is the real `backprop multi-run` on the local runtime with the tiny model
(2 runs of 2 steps, the second replaying rows of the first)."""

import os
import re
import shutil
from pathlib import Path

from backpropagate.contract.files import sha256_file
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT
from tests.web_ui import console_errors, serve_ui

SETTINGS = {"model": "models/tiny", "steps": "2", "checkpoint_every": "0", "max_seq_length": "64",
            "batch_size": "2", "gradient_accumulation": "2"}


def fill_the_form(page) -> None:
    for name, value in SETTINGS.items():
        page.fill(f"#train input[name={name}]", value)
    page.select_option("#train select[name=device]", "cpu")
    page.select_option("#train select[name=runtime]", "local")


def test_a_campaign_of_two_picked_datasets_runs_one_after_the_other_and_its_page_follows_it(tiny_model, tmp_path,
                                                                                             browser):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "datasets").mkdir(parents=True)
    rows = (ROOT / "examples" / "quickstart.jsonl").read_text().splitlines(keepends=True)
    (root / "datasets" / "week1.jsonl").write_text("".join(rows[: len(rows) // 2]))
    (root / "datasets" / "week2.jsonl").write_text("".join(rows[len(rows) // 2:]))
    with serve_ui(tmp_path, "--output", str(root), "--runtime", "local") as url:  # this machine only: no login
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = console_errors(page)
        page.goto(url + "/runs/new")
        assert page.get_attribute("#start-campaign", "formaction") == "/campaigns/new"
        assert page.eval_on_selector("#campaign select[name=campaign_data]", "el => el.multiple")

        fill_the_form(page)
        page.select_option("#campaign select[name=campaign_data]", ["week1.jsonl"])
        with page.expect_navigation() as refused:
            page.click("#start-campaign")
        assert refused.value.status == 400
        assert "Pick two or more different datasets" in page.inner_text("#start-error")
        assert errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
        errors.clear()  # the refusal's status, as the console reports it: the only error expected
        fill_the_form(page)
        page.select_option("#campaign select[name=campaign_data]", ["week2.jsonl", "week1.jsonl"])
        page.select_option("#campaign select[name=campaign_merge]", "slao")
        page.fill("#campaign input[name=replay_fraction]", "0.5")
        page.click("#start-campaign")
        page.wait_for_url(re.compile(r"/campaigns/[0-9a-f-]{36}$"), timeout=60_000)
        campaign_id = page.url.rsplit("/", 1)[1]
        following = page.content()
        assert '<meta http-equiv="refresh" content="3">' in following and 'id="following"' in following

        # The page reloads itself every 3 s until the campaign has ended.
        page.wait_for_selector("#status.status-completed", timeout=300_000)
        history = RunHistory(root)
        campaign = history.get(campaign_id)
        assert campaign.stage == "campaign" and campaign.status == "completed" and campaign.merge == "slao"
        runs = [history.get(run_id) for run_id in campaign.campaign_runs]
        # A multiple select sends its picks in the order it lists them: that is the run order. Run 2's data file
        # is week2's rows, then half as many of week1's: the form's replay fraction reached the campaign.
        assert runs[0].dataset_sha256 == sha256_file(root / "datasets" / "week1.jsonl")
        week1, week2 = ((root / "datasets" / name).read_text().splitlines() for name in ("week1.jsonl", "week2.jsonl"))
        second = (root / campaign_id / "data" / "run-2.jsonl").read_text().splitlines()
        assert second[:len(week2)] == week2 and set(second[len(week2):]) <= set(week1)
        assert runs[1].replayed == {"fraction": 0.5, "own_rows": len(week2), "rows": len(week2) // 2,
                                    "from_runs": {"1": len(week2) // 2}}
        assert [(run.status, run.steps_done) for run in runs] == [("completed", 2), ("completed", 2)]
        html = page.content()
        assert "refresh" not in html and html.count('<td class="status-completed">completed</td>') == 2

        page.set_viewport_size({"width": 390, "height": 900})
        shots = Path(os.environ.get("UI_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "campaign-390.png"), full_page=True)
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"the campaign page at 390 px is {scroll} px wide"
        assert errors == []  # not even a missing favicon's 404
