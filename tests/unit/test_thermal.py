"""The thermal guard's decisions, with a temperature series standing in for NVML (no GPU here)."""

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import TrainingSettings
from backpropagate_stages.train.thermal import SeriesSampler, ThermalGuard, open_sampler

SETTINGS = TrainingSettings(thermal_pause_c=85, thermal_resume_c=75, thermal_timeout_s=60, thermal_poll_s=5)


def guard(series, settings=SETTINGS):
    emitted, slept = [], []
    return ThermalGuard(SeriesSampler(series), settings, emitted.append, "run-1", sleep=slept.append), emitted, slept


def test_below_the_pause_threshold_training_goes_straight_on():
    thermal, emitted, slept = guard([84.9])
    thermal.check(step=1)
    assert emitted == [] and slept == []


def test_at_the_threshold_it_pauses_until_below_the_resume_threshold():
    thermal, emitted, slept = guard([85, 80, 76, 75])
    thermal.check(step=3)
    assert [e.name for e in emitted] == ["paused", "resumed"]
    assert emitted[0].reading == {"temperature_c": 85.0, "step": 3}
    assert slept == [5, 5, 5]
    assert thermal.pauses[0]["step"] == 3


def test_a_gpu_that_never_cools_is_a_coded_error():
    settings = TrainingSettings(thermal_pause_c=85, thermal_resume_c=75, thermal_timeout_s=0.0001,
                                thermal_poll_s=1)
    thermal, emitted, _ = guard([90], settings)
    with pytest.raises(BackpropError) as caught:
        thermal.check(step=2)
    assert caught.value.render() == (
        "[RUNTIME_GPU_TEMPERATURE_CRITICAL]: the GPU stayed at 90.0°C for 0s after training paused at 85°C\n"
        "  fix: improve cooling, then `backprop resume run-1` (it keeps this run's --thermal-* settings)")
    assert caught.value.exit_code == 5


def test_without_nvml_the_guard_reports_itself_off():
    sampler, why = open_sampler("cpu", None)
    assert sampler is None and why == "training on the CPU: no GPU temperature to watch"
    sampler, why = open_sampler("cuda", None)
    if sampler is not None:
        pytest.skip("this machine has NVML; the no-NVML half of the behaviour cannot be shown here")
    assert why.startswith("NVML is not available")
