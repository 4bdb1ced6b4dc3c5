"""`scripts/bench_continual.py` on the tiny model: each cell measured through the real CLI and written whole with
where it was measured, and a second invocation (a benchmark cut off and started again) skips what is there."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def bench(model, work, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_continual.py"), "--model", str(model),
                           "--steps", "1", "--orders", "ab", "--seeds", "0", "--no-gguf", "--work", str(work), *args],
                          capture_output=True, text=True, check=False, timeout=600)


def test_each_cell_is_measured_once_and_a_rerun_goes_on_from_the_cells_there(tiny_model, tmp_path):
    first = bench(tiny_model, tmp_path, "--methods", "slao+replay")
    assert first.returncode == 0, first.stderr
    cell = json.loads((tmp_path / "quickstart-slao+replay-ab-seed0.json").read_text())
    assert [len([v for v in row if v is not None]) for row in cell["matrix"]["accuracy"]] == [1, 2]  # a[i][j], j <= i
    assert cell["config"]["replay"] == 1.0 and cell["measured_on"]["cores"] >= 1
    campaign = json.loads(next((tmp_path / "quickstart-slao+replay-ab-seed0").glob("*/campaign.json")).read_text())
    assert campaign["merge"] == "slao" and campaign["replay_fraction"] == 1.0  # what the method names ran

    second = bench(tiny_model, tmp_path, "--methods", "slao+replay,fresh")
    assert second.returncode == 0, second.stderr
    assert "quickstart-slao+replay-ab-seed0: measured before" in second.stderr
    assert json.loads((tmp_path / "quickstart-slao+replay-ab-seed0.json").read_text()) == cell
    assert "quickstart-fresh-ab-seed0: measured in" in second.stderr
    table = (tmp_path / "results.md").read_text()
    assert "| slao+replay |" in table and "| fresh |" in table
