"""The thermal guard: pause training between steps while the GPU is too hot.

Readings come from NVML (nvidia-ml-py). Where there is no NVML (a CPU run, macOS,
no driver), the guard says it is off rather than pretending all is well.
"""

import logging
import time
from collections.abc import Callable, Iterator

from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import TrainingSettings

log = logging.getLogger("backpropagate.thermal")


class NvmlSampler:
    """Temperature, memory, power and utilisation of one GPU."""

    def __init__(self, index: int = 0) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def read(self) -> dict:
        nvml, handle = self.nvml, self.handle
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {
            "temperature_c": float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            "memory_used_mb": round(memory.used / 2**20),
            "power_w": round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000, 1),
            "utilization_pct": nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        }


class SeriesSampler:
    """Stand-in for NVML in tests: replays a temperature series, holding its last value."""

    def __init__(self, temperatures: list[float]) -> None:
        self._readings: Iterator[float] = iter(temperatures)
        self._last = temperatures[-1]

    def read(self) -> dict:
        self._last = next(self._readings, self._last)
        return {"temperature_c": float(self._last)}


def open_sampler(device_type: str, series: list[float] | None):
    """A sampler, or (None, why the guard is off)."""
    if series:
        return SeriesSampler(series), ""
    if device_type != "cuda":
        return None, "training on the CPU: no GPU temperature to watch"
    try:
        return NvmlSampler(), ""
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, driver errors: all mean "no NVML"
        return None, f"NVML is not available ({exc})"


class ThermalGuard:
    def __init__(self, sampler, settings: TrainingSettings, emit: Callable, run_id: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.sampler, self.settings, self.emit, self.run_id, self.sleep = sampler, settings, emit, run_id, sleep
        self.pauses: list[dict] = []

    def check(self, step: int) -> None:
        """Between steps: return at once when cool, else wait until cool or give up."""
        reading = self.sampler.read()
        if reading["temperature_c"] < self.settings.thermal_pause_c:
            return
        self.emit(events.Paused(reason="gpu_temperature", reading={**reading, "step": step}))
        started = time.monotonic()
        while reading["temperature_c"] > self.settings.thermal_resume_c:
            waited = time.monotonic() - started
            if waited >= self.settings.thermal_timeout_s:
                raise BackpropError("RUNTIME_GPU_TEMPERATURE_CRITICAL", temperature_c=reading["temperature_c"],
                                    waited_s=waited, pause_c=self.settings.thermal_pause_c, run_id=self.run_id)
            self.sleep(self.settings.thermal_poll_s)
            reading = self.sampler.read()
        waited = round(time.monotonic() - started, 2)
        self.pauses.append({"step": step, "waited_s": waited})
        self.emit(events.Resumed(reason=f"gpu_temperature {reading['temperature_c']}°C after {waited}s"))
