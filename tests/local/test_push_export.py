"""`backprop export --push-to-hub`: a real merge of a real run, pushed to the Hub stand-in (tests/unit/hub_standin.py)."""

import hashlib

import yaml

from tests.conftest import ROOT, run_cli
from tests.unit.hub_standin import HubStandIn

TOKEN = "hf_" + "StandInToken0123456789abcdefghijk"


def test_a_merged_export_pushed_to_the_hub_arrives_whole(tiny_model, tmp_path):
    hub = HubStandIn(token=TOKEN)
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf")}
    try:
        out = str(tmp_path / "out")
        trained = run_cli("train", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--model", str(tiny_model),
                          "--device", "cpu", "--steps", "2", "--output", out, "--report-to", "none")
        assert trained.returncode == 0, trained.stderr
        run_id = next(line.split()[-1] for line in trained.stdout.splitlines() if line.startswith("run id:"))
        result = run_cli("export", run_id, "--format", "merged", "--output", out, "--push-to-hub", "me/tiny-merged",
                         env=env)
        assert result.returncode == 0, result.stderr
        merged = tmp_path / "out" / run_id / "merged"
        pushed = hub.files("me/tiny-merged")
        local = {path.name: path.read_bytes() for path in merged.iterdir() if path.is_file()}
        assert {name: hashlib.sha256(data).hexdigest() for name, data in local.items()} == \
            {name: hashlib.sha256(pushed[name]).hexdigest() for name in local}
        front = yaml.safe_load(pushed["README.md"].decode().split("---\n")[1])
        assert front == {"pipeline_tag": "text-generation", "tags": ["backpropagate"]}  # a local base: no base_model
        assert "hub: " + hub.url + "/me/tiny-merged" in result.stdout
        assert TOKEN not in result.stdout + result.stderr + trained.stdout + trained.stderr
    finally:
        hub.close()
