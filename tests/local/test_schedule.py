"""The learning-rate schedule each --lr-scheduler and --warmup-steps value gives."""

import pytest
from backpropagate.contract.settings import TrainingSettings
from backpropagate_stages.train.loop import lr_factor


def factors(**settings) -> list[float]:
    config = TrainingSettings(**settings)
    return [lr_factor(step, config) for step in range(config.steps)]


def test_warmup_rises_linearly_to_the_peak():
    assert factors(steps=10, warmup_steps=3, lr_scheduler="constant")[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_decays_from_the_peak_towards_zero():
    curve = factors(steps=100, warmup_steps=0, lr_scheduler="cosine")
    assert curve[0] == 1.0 and curve == sorted(curve, reverse=True) and curve[-1] < 0.001


def test_linear_decays_in_equal_steps():
    assert factors(steps=4, warmup_steps=0, lr_scheduler="linear") == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_constant_stays_at_the_peak():
    assert set(factors(steps=5, warmup_steps=0, lr_scheduler="constant")) == {1.0}
