"""`scripts/bench_continual.py --report`: the table of the cells a long benchmark has measured so far, from
any number of invocations, with mean ± sd over its cells and the cells still missing named; it measures nothing."""

import json
import statistics
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cell(method: str, order: str, first_set_kept: int) -> dict:
    """A two-run cell as the script writes it: each set learned 8 of 8, the first then kept `first_set_kept`."""
    from backpropagate.contract.campaign import campaign_matrix

    def measured(after, on, right):
        return {"after_run": after, "on_run": on, "hits": {"expected": 8, "base": 0, "fine_tune": right},
                "eval_loss": 0.1}

    evals = [measured(1, 1, 8), measured(2, 1, first_set_kept), measured(2, 2, 8)]
    config = {"setting": "quickstart", "method": method, "order": order, "seed": 0, "model": "m", "steps": 20,
              "device": "cpu"}
    return {"evals": evals, "deployed": "id", "config": config, "matrix": campaign_matrix(evals, 2), "seconds": 1}


def test_report_gives_mean_and_sd_over_the_cells_there_and_names_the_missing_ones(tmp_path):
    cells = {"slao-ab": cell("slao", "ab", 4), "slao-ba": cell("slao", "ba", 7), "none-ab": cell("none", "ab", 1)}
    for name, figures in cells.items():
        (tmp_path / f"quickstart-{name}-seed0.json").write_text(json.dumps(figures))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_continual.py"), "--report", "--model", "m",
                           "--methods", "slao,none", "--orders", "ab,ba", "--seeds", "0", "--work", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "results.json").read_text())["methods"]
    # ACC is the mean of the last row, (kept/8 + 1) / 2; BWT is kept/8 - 1.
    accs = [(4 / 8 + 1) / 2, (7 / 8 + 1) / 2]
    assert summary["slao"]["acc"] == pytest.approx([statistics.mean(accs), statistics.stdev(accs)], abs=1e-4)
    assert summary["slao"]["bwt"] == pytest.approx([-(4 + 1) / 16, statistics.stdev([-4 / 8, -1 / 8])], abs=1e-4)
    assert summary["none"]["acc"] == [0.5625, None]  # one cell: no spread to give
    table = (tmp_path / "results.md").read_text()
    assert "| slao | 0.844 ± 0.133 | -0.312 ± 0.265 |" in table and "| none | 0.562 | -0.875 |" in table
    assert "Not measured yet (1 of 4 cells): quickstart-none-ba-seed0." in table
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []  # nothing was trained


def test_the_measurements_page_shows_the_table_of_the_cells_in_the_repository(tmp_path):
    """The benchmark's table in docs/measurements.md is what `--report` makes of the cells kept in
    benchmarks/continual/, so a cell added there without the page following it fails here."""
    for measured in (ROOT / "benchmarks" / "continual" / "quickstart").glob("quickstart-*.json"):
        (tmp_path / measured.name).write_text(measured.read_text())
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_continual.py"), "--report", "--model",
                           "models/smollm2-135m-instruct", "--work", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "results.md").read_text().split("\n\n")[1]  # the heading, the methods' table, matrices
    rows = table.splitlines()[2:]  # under its header: a method a row
    assert len(rows) == 10
    page = (ROOT / "docs" / "measurements.md").read_text()
    assert [row for row in rows if row not in page] == [], "paste the table of bench_continual.py --report"
