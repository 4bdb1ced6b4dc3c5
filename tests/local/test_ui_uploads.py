"""Datasets uploaded to the UI are kept by content: an upload under a name already used never changes what an
earlier run trained on, and `backprop replay` of that run trains on exactly its data again.

The app is driven in-process (Starlette's TestClient); its run is the real CLI on the local runtime with the
tiny model, and the replay is the real CLI too."""

import hashlib
import json
import re
import shutil
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.history import RunHistory
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

from tests.conftest import ROOT, run_cli

FIRST = (ROOT / "examples" / "quickstart.jsonl").read_bytes()
SECOND = b"".join(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                           {"role": "assistant", "content": f"answer {i}"}]}).encode() + b"\n"
                  for i in range(8))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_upload_under_a_used_name_leaves_the_earlier_runs_data_and_replay_trains_on_it(tiny_model, tmp_path):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    app = create_app(UiConfig(sandbox=Sandbox(root), credentials=None, runtime="local"))
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/runs/new").text).group(1)

    assert client.post(f"/datasets?csrf={token}", files={"file": ("facts.jsonl", FIRST)}).status_code == 303
    started = client.post("/runs/new", data={
        "csrf": token, "dataset": "facts.jsonl", "model": "models/tiny", "steps": "1", "device": "cpu",
        "runtime": "local", "max_seq_length": "64"})
    assert started.status_code == 303, started.text
    run_id = started.headers["location"].rsplit("/", 1)[1]
    job = app.state.jobs.latest(run_id, "train")
    assert job.done.wait(timeout=300) and job.process.returncode == 0, job.stderr_tail

    again = client.post(f"/datasets?csrf={token}", files={"file": ("facts.jsonl", SECOND)})
    assert again.status_code == 303 and "dataset=facts.jsonl" in again.headers["location"]
    assert (root / "datasets" / "facts.jsonl").read_bytes() == SECOND  # the name shows the newest upload
    stored = root / "datasets" / "by-sha256"
    assert sorted(p.name for p in stored.iterdir()) == sorted([f"{sha256(FIRST)}.jsonl", f"{sha256(SECOND)}.jsonl"])
    assert (stored / f"{sha256(FIRST)}.jsonl").read_bytes() == FIRST
    row = RunHistory(root).get(run_id)
    assert row.dataset_sha256 == sha256(FIRST)
    assert (root / run_id / "input" / "data").resolve() == stored / f"{sha256(FIRST)}.jsonl"

    replayed = run_cli("replay", run_id[:8], "--output", str(root), "--json", timeout=300)
    assert replayed.returncode == 0, replayed.stderr
    replay_id = json.loads(replayed.stdout.splitlines()[-1])["result"]["run_id"]
    replay_row = RunHistory(root).get(replay_id)
    assert replay_row.replay_of == run_id and replay_row.dataset_sha256 == sha256(FIRST)
