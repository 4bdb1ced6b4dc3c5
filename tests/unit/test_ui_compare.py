"""The compare page's pickers and refusals; two real runs compared in a browser: test_history_commands.py."""

import json
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from tests.unit.test_ui_security import client_for, logged_in

RUNS = ["0123abcd-0000-4000-8000-000000000000", "0123ffff-0000-4000-8000-000000000000"]


@pytest.fixture
def client(tmp_path):
    root = tmp_path / "ui"
    client = client_for(root)
    logged_in(client)
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": run, "status": "completed", "model": "m", "run_dir": str(root / run)} for run in RUNS]}))
    return client


def test_without_two_runs_the_page_offers_every_run_in_both_pickers(client):
    page = client.get("/compare")
    assert page.status_code == 200 and 'id="differences"' not in page.text
    for run in RUNS:
        assert page.text.count(f'<option value="{run}"') == 2


def test_a_prefix_two_runs_share_or_no_run_has_shows_the_coded_error(client):
    shared = client.get(f"/compare?a=0123&b={RUNS[1]}")
    assert shared.status_code == 400 and "[INPUT_RUN_AMBIGUOUS]" in shared.text
    missing = client.get(f"/compare?a={RUNS[0]}&b=beef")
    assert missing.status_code == 400 and "[INPUT_RUN_NOT_FOUND]" in missing.text


def test_the_compare_page_needs_the_login(tmp_path):
    assert client_for(tmp_path / "ui").get("/compare").status_code == 401
