"""How much memory the run may use: a limit the user set, the GPU's (NVML), or the RAM available."""

from dataclasses import dataclass
from pathlib import Path

# Kept free on a GPU for what torch.cuda.max_memory_allocated does not count: the CUDA context
# (several hundred MiB with cuBLAS loaded) and the caching allocator's fragmentation.
GPU_HEADROOM = 2**30


@dataclass(frozen=True)
class Budget:
    limit: int | None  # bytes the run may use at its peak; None when nothing says
    source: str  # where the limit comes from, or why there is none


@dataclass(frozen=True)
class Gpu:
    name: str
    total: int
    temperature_c: float | None = None


def nvml_gpu(index: int = 0) -> tuple[Gpu | None, str]:
    """GPU ``index`` as NVML reports it, or (None, why not). nvidia-ml-py comes with the `local` extra."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        total = pynvml.nvmlDeviceGetMemoryInfo(handle).total
        temperature = float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded: all mean no GPU
        return None, f"{type(exc).__name__}: {exc}".rstrip(": ")
    return Gpu(name.decode() if isinstance(name, bytes) else name, total, temperature), ""


def gpu_absent() -> str | None:
    """Why this machine has no CUDA GPU, when NVML can tell; None when it finds one or cannot tell (the
    host CLI alone, without nvidia-ml-py): then the train stage decides, and says so if it falls back."""
    import importlib.util

    if importlib.util.find_spec("pynvml") is None:
        return None
    gpu, why = nvml_gpu()
    return None if gpu is not None else why


def training_device(device: str) -> str:
    """What ``--device`` trains on here: `auto` is the GPU, or the CPU where there is certainly none."""
    if device == "auto":
        return "cpu" if gpu_absent() else "cuda"
    return device


def available_ram(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable: what the kernel can give a new process without swapping; None off Linux."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def budget(device: str, limit_gb: float) -> Budget:
    """What a run on ``device`` ("cpu" or "cuda") may use; ``limit_gb`` 0 means the device's own."""
    if limit_gb:
        return Budget(int(limit_gb * 2**30), f"--memory-limit-gb {limit_gb:g}")
    if device == "cpu":
        ram = available_ram()
        return Budget(ram, "the RAM available now (MemAvailable)" if ram else "no RAM figure on this system")
    gpu, why = nvml_gpu()
    if gpu is None:
        return Budget(None, f"no GPU found here ({why})")
    return Budget(gpu.total - GPU_HEADROOM, f"{gpu.name}, {gpu.total / 2**30:.1f} GiB less 1 GiB for the CUDA "
                                            "context")
