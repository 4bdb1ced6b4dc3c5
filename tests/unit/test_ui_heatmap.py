"""The campaign page's heatmap: held-out loss after each run on each run's data, shaded lowest to highest."""

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")

from backpropagate.ui.routes_campaigns import heatmap


def test_each_measured_pair_is_placed_by_row_after_run_and_column_on_run_and_shaded_by_its_loss():
    evals = [{"after_run": 1, "on_run": 1, "eval_loss": 1.0},
             {"after_run": 2, "on_run": 1, "eval_loss": 3.0, "hits": 4},
             {"after_run": 2, "on_run": 2, "eval_loss": 2.0}]
    grid = heatmap(evals, 2)
    assert [[cell and cell["shade"] for cell in row] for row in grid] == [[0.0, None], [1.0, 0.5]]
    assert grid[1][0]["hits"] == 4


def test_a_campaign_that_held_nothing_out_or_measured_one_loss_has_no_division_by_zero():
    assert heatmap([], 2) == [[None, None], [None, None]]
    assert heatmap([{"after_run": 1, "on_run": 1, "eval_loss": 2.5}], 1) == [
        [{"after_run": 1, "on_run": 1, "eval_loss": 2.5, "shade": 0.0}]]
