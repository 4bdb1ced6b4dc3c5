"""`backprop info`: versions, runtimes and devices, to paste into a bug report.

torch is probed in a child process, the way the local runtime will run it, so
this command stays quick to start and reports what a stage would really see.
"""

import json
import platform
import subprocess
import sys
from importlib import metadata

from backpropagate import __version__
from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.output import Output

PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "sentencepiece", "bitsandbytes",
            "unsloth", "typer", "rich")

_TORCH_PROBE = """
import json, torch
gpus = [{"name": torch.cuda.get_device_name(i),
         "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
        for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
try:
    import pynvml
    pynvml.nvmlInit()
    for i, gpu in enumerate(gpus):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        gpu["temperature_c"] = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
except Exception:
    pass  # no NVML: temperatures are simply not reported
print(json.dumps({"torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "gpus": gpus}))
"""


def info(output: OutputOpt = None, json_output: JsonOpt = None) -> None:
    """Show versions, runtimes and devices."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    from backpropagate.runtimes.registry import RUNTIME_NAMES, runtime_class

    runtimes = {name: _runtime_status(runtime_class(name).from_settings(settings, None))
                for name in RUNTIME_NAMES}
    report = {
        "backpropagate": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "runtimes": runtimes,
        "runtime_auto": _auto_choice(runtimes),
        "docker": _docker(settings),
        "devices": _devices(),
        "output": str(output_dir(settings).resolve()),
    }
    Output(json_mode=settings.log_json).result(_text(report), report)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _runtime_status(runtime) -> str:
    try:
        runtime.check()
    except BackpropError as error:
        return f"unavailable: {error.message}"
    return "available"


def _auto_choice(runtimes: dict) -> dict:
    from backpropagate.runtimes.registry import AUTO

    usable = [name for name in AUTO if runtimes[name] == "available"]
    if usable:
        return {"choice": usable[0], "why": "the first that can run here, in this order: " + ", ".join(AUTO)}
    return {"choice": None, "why": "no runtime is available: start Docker, or pip install 'backpropagate[local]'"}


def _docker(settings) -> dict:
    """The engine when one answers, and each stage image of this version: present, stale or missing."""
    from backpropagate.images.status import image_statuses
    from backpropagate.runtimes.engine import connect, engine_url

    try:
        client = connect(timeout=5)
    except BackpropError as error:
        return {"engine": None, "host": engine_url()[0], "note": error.message, "images": {}}
    version = client.version()
    images = {f"{s.stage}:{s.variant}": s.status for s in image_statuses(client, settings.docker.base_image)}
    return {"engine": version.get("Version"), "api": version.get("ApiVersion"), "host": client.api.base_url,
            "note": "stage images: backprop images ls", "images": images}


def _devices() -> dict:
    if _version("torch") is None:
        return {"cpu": True, "gpus": [], "note": "torch is not installed, so GPUs were not probed"}
    try:
        probe = subprocess.run([sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=120)
        found = json.loads(probe.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return {"cpu": True, "gpus": [], "note": f"GPU probe failed: {exc}"}
    return {"cpu": True, **found}


def _text(report: dict) -> str:
    lines = [f"backpropagate {report['backpropagate']}", f"python        {report['python']}",
             f"platform      {report['platform']}", f"output        {report['output']}", "", "packages:"]
    lines += [f"  {name:<14}{version or '-'}" for name, version in report["packages"].items()]
    docker = report["docker"]
    # The engine's problem is said once, under docker: below.
    shown = {name: "unavailable: no Docker engine answers (see docker below)" if name == "docker" and
             docker["engine"] is None and status.startswith("unavailable") else status
             for name, status in report["runtimes"].items()}
    lines += ["", "runtimes:"] + [f"  {name:<14}{status}" for name, status in shown.items()]
    lines.append(f"  auto          {report['runtime_auto']['choice']}: {report['runtime_auto']['why']}")
    lines += ["", f"docker:         {docker['engine'] or '-'}" + (f" at {docker['host']}" if docker.get("host") else ""),
              f"  note          {docker['note']}"]
    lines += [f"  {name:<18}{status}" for name, status in docker["images"].items()]
    devices = report["devices"]
    gpus = ", ".join(f"{g['name']} ({g['memory_gb']} GB" + (f", {g['temperature_c']}°C" if "temperature_c" in g else "")
                     + ")" for g in devices.get("gpus", [])) or "none"
    lines += ["", "devices:", "  cpu           yes", f"  gpus          {gpus}"]
    if devices.get("note"):
        lines.append(f"  note          {devices['note']}")
    return "\n".join(lines)
