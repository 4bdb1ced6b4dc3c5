"""Checkpoint retention: the newest K and the best by loss survive; leftovers of a crash do not."""

import json

from backpropagate_stages.train.checkpoint import completed, prune_checkpoints


def make(folder, step, loss):
    path = folder / f"step-{step}"
    path.mkdir(parents=True)
    (path / "checkpoint.json").write_text(json.dumps({"step": step, "loss": loss, "files": {}}))


def test_the_newest_k_and_the_lowest_loss_are_kept(tmp_path):
    for step, loss in [(2, 3.0), (4, 1.0), (6, 2.0), (8, 2.5), (10, 2.2)]:
        make(tmp_path, step, loss)
    (tmp_path / "step-12.partial").mkdir()
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in completed(tmp_path)] == ["step-4", "step-8", "step-10"]
    assert not (tmp_path / "step-12.partial").exists()


def test_steps_sort_as_numbers_not_text(tmp_path):
    for step in (9, 10, 100):
        make(tmp_path, step, 1.0 * step)
    assert [p.name for p in completed(tmp_path)] == ["step-9", "step-10", "step-100"]
