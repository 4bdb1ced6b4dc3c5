"""The run page's words for how a run ended: a Stop asked for reads "stopped", in a neutral colour; a failure
stays an error."""

import json
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope, Error

from tests.unit.test_ui_stream import RUN, finished_run


def ended(root, status: str, code: str):
    client = finished_run(root)
    error = BackpropError(code, run_id=RUN, path="d.jsonl", reason="r", gb=1, needed=2)
    line = Envelope(run_id=RUN, stage="train", event=Error(code=code, message=error.message, fix=error.fix)).to_line()
    with (root / RUN / "events.jsonl").open("a") as log:
        log.write(line + "\n")
    history = json.loads((root / "run_history.json").read_text())
    history["runs"][0].update(status=status, error_code=code)
    (root / "run_history.json").write_text(json.dumps(history))
    return client


def test_a_run_stopped_on_request_reads_stopped_not_as_an_error(tmp_path):
    page = ended(tmp_path / "ui", "interrupted", "RUNTIME_INTERRUPTED").get(f"/runs/{RUN}").text
    assert '<span id="status" class="status-interrupted">stopped</span>' in page
    assert 'id="stopped">Stopped on request at step 3' in page and f"backprop resume {RUN}" in page
    assert 'class="error"' not in page
    listed = ended(tmp_path / "ui2", "interrupted", "RUNTIME_INTERRUPTED").get("/").text
    assert 'class="status-interrupted">stopped</td>' in listed


def test_a_failed_run_still_shows_its_coded_error_in_red(tmp_path):
    page = ended(tmp_path / "ui", "failed", "INPUT_DATASET_NOT_FOUND").get(f"/runs/{RUN}").text
    assert '<span id="status" class="status-failed">failed</span>' in page
    assert '<p class="error">[INPUT_DATASET_NOT_FOUND]: ' in page and 'id="stopped"' not in page
