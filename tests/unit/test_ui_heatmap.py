"""The campaign page's heatmaps: held-out loss after each run on each run's data, shaded lowest to highest, and
the accuracy matrix on each run's prompts, shaded from all right to none."""

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")

from backpropagate.contract.campaign import campaign_matrix
from backpropagate.ui.routes_campaigns import accuracy_cells, heatmap


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


def hits(right: int) -> dict:
    return {"expected": 4, "base": 0, "fine_tune": right}


def test_the_accuracy_matrix_places_each_runs_prompts_after_each_run_with_acc_and_backward_transfer():
    evals = [{"after_run": 1, "on_run": 1, "hits": hits(4), "eval_loss": 1.5},
             {"after_run": 2, "on_run": 1, "hits": hits(2)}, {"after_run": 2, "on_run": 2, "hits": hits(3)},
             {"after_run": 3, "on_run": 1, "hits": hits(1)}, {"after_run": 3, "on_run": 2, "hits": hits(3)},
             {"after_run": 3, "on_run": 3, "hits": hits(4)}]
    matrix = campaign_matrix(evals, 3)
    assert matrix["accuracy"] == [[1.0, None, None], [0.5, 0.75, None], [0.25, 0.75, 1.0]]
    assert matrix["hits"][2] == ["1/4", "3/4", "4/4"]
    assert matrix["eval_loss"][0] == [1.5, None, None] and matrix["eval_loss"][2] == [None, None, None]
    assert matrix["acc"] == round((0.25 + 0.75 + 1.0) / 3, 4)
    assert matrix["bwt"] == round(((0.25 - 1.0) + (0.75 - 0.75)) / 2, 4)  # run 1 forgotten, run 2 kept
    cells = accuracy_cells(matrix)
    assert cells[2][0] == {"accuracy": 0.25, "hits": "1/4", "shade": 0.75} and cells[0][1] is None


def test_a_campaign_not_yet_past_its_last_run_has_no_acc_and_a_campaign_without_prompts_no_accuracy():
    partial = campaign_matrix([{"after_run": 1, "on_run": 1, "hits": hits(4)}], 2)
    assert partial["accuracy"] == [[1.0, None], [None, None]] and partial["acc"] is None and partial["bwt"] is None
    losses_only = campaign_matrix([{"after_run": 1, "on_run": 1, "eval_loss": 2.0}], 1)
    assert losses_only["accuracy"] == [[None]] and losses_only["eval_loss"] == [[2.0]]
