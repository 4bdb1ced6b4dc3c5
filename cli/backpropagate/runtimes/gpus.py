"""Which GPUs a stage container gets: the `--gpus` value, the DeviceRequest it becomes, and the probe.

``--gpus`` takes what ``docker run --gpus`` takes: ``all``, ``none``, a count (``2``) or device
ids (``0,1`` or GPU UUIDs). ``auto`` (the default) asks for all GPUs when the probe finds them
usable and for none otherwise, and that fallback is announced (the caller turns it into a
warning event). A GPU asked for explicitly where none is usable is ``DEP_GPU_NOT_AVAILABLE``
with the fix, not the engine's "could not select device driver" 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError


@dataclass(frozen=True)
class GpuChoice:
    """``count`` -1 is all; ``device_ids`` names devices; neither set means no GPU."""
    count: int = 0
    device_ids: tuple[str, ...] = ()
    explicit: bool = False  # the user asked for a GPU, so none being usable is an error

    @property
    def wants_gpu(self) -> bool:
        return self.count != 0 or bool(self.device_ids)


def parse_gpus(value: str) -> GpuChoice:
    text = value.strip().lower()
    if text == "auto":
        return GpuChoice(count=-1)
    if text == "none" or text == "0":
        return GpuChoice()
    if text == "all":
        return GpuChoice(count=-1, explicit=True)
    if text.isdigit():
        return GpuChoice(count=int(text), explicit=True)
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if ids and all(part.isdigit() or part.upper().startswith("GPU-") for part in ids):
        return GpuChoice(device_ids=ids, explicit=True)
    raise BackpropError("CONFIG_VALUE_INVALID", name="--gpus", value=value, reason="not a GPU selection",
                        allowed="auto, all, none, a count such as 2, or device ids such as 0,1")


def device_requests(choice: GpuChoice) -> list:
    """The Docker SDK's DeviceRequest list for ``choice`` (empty for no GPU)."""
    if not choice.wants_gpu:
        return []
    from docker.types import DeviceRequest

    if choice.device_ids:
        return [DeviceRequest(device_ids=list(choice.device_ids), capabilities=[["gpu"]])]
    return [DeviceRequest(count=choice.count, capabilities=[["gpu"]])]


def probe(client, image: str) -> str | None:
    """Start a throwaway container asking for all GPUs; None when that works, else the engine's reason.

    Created, started and removed by hand: with ``containers.run(remove=True)`` a failed start leaks
    the container.
    """
    from docker.errors import APIError

    container = None
    try:
        container = client.containers.create(image, entrypoint=["true"], device_requests=device_requests(
            GpuChoice(count=-1)), labels={"backpropagate.probe": "gpu"}, network_disabled=True)
        container.start()
        result = container.wait(timeout=60)
        return None if result.get("StatusCode") == 0 else f"exit code {result.get('StatusCode')}"
    except APIError as exc:
        return str(exc.explanation or exc)
    finally:
        if container is not None:
            container.remove(force=True)


def resolve(choice: GpuChoice, may_use_gpu: bool, probe_result) -> tuple[GpuChoice, str | None]:
    """The GPUs a stage gets, and why it gets none when ``auto`` wanted some (None otherwise).

    ``may_use_gpu`` is the stage's declared need (a CPU run needs none); ``probe_result`` is called
    only when a GPU is wanted and returns None or the reason none is usable."""
    if not may_use_gpu or not choice.wants_gpu:
        return GpuChoice(), None
    reason = probe_result()
    if reason is None:
        return choice, None
    if choice.explicit:
        raise BackpropError("DEP_GPU_NOT_AVAILABLE", reason=f"Docker cannot give containers a GPU ({reason})")
    return GpuChoice(), f"--gpus auto found no GPU Docker can give containers ({reason}): running without one"
