"""The Docker runtime: the same stage program, in the stage's pinned image, through the Docker SDK.

The container gets the run folder read-write and the other paths its spec names read-only, a
named volume for the Hugging Face cache, the host's uid:gid (so what it writes is the user's),
GPUs only where the train stage wants and can have them, no network for merge and gguf, and
secrets only by environment. Its stdout (the events) streams live; it is removed however the
run ends, Ctrl-C included. Its stdin is attached and held open by this process and never written:
when the host dies, however it dies, the engine closes it (``stdin_once``) and the stage ends
(backpropagate_stages/host_watch.py), so the container stops; what is left of it is removed by the
next run of the same run's stages, which holds the run then.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import HOST, Envelope, EventParseError, parse_line
from backpropagate.contract.settings import DockerSettings
from backpropagate.contract.specs import read_spec, spec_data, write_spec_data
from backpropagate.contract.stages import HOST_WATCH_VARIABLE, stage_named
from backpropagate.runtimes.base import StageExit
from backpropagate.runtimes.gpus import device_requests, parse_gpus, probe, resolve
from backpropagate.runtimes.launch import stage_command
from backpropagate.runtimes.mounts import PathMap, container_path, plan_mounts
from backpropagate.runtimes.stopping import STOP_GRACE_S, Stopper

log = logging.getLogger("backpropagate.runtime")

HF_CACHE_VOLUME = "backpropagate-hf-cache"
HF_CACHE_TARGET = "/cache/huggingface"  # HF_HOME in every image
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # passed through by environment, never written
PASSED_VARIABLES = ("BACKPROP_FAULTS",)  # test-only fault injection (stages/backpropagate_stages/train/faults.py)
LABEL = "backpropagate.stage"
RUN_LABEL = "backpropagate.run_id"
NOT_STARTED = (126, 127)  # the container's command could not be executed, or was not found


class DockerRuntime:
    name = "docker"
    answers = "a Docker engine answers"  # why `auto` takes it
    absent = "no Docker engine"  # why `auto` passes it over

    @classmethod
    def from_settings(cls, settings, note: Callable[[str], None] | None) -> DockerRuntime:
        """From config.Settings (None: the defaults): its Docker section, workers and stop grace."""
        if settings is None:
            return cls(**({"note": note} if note else {}))
        return cls(settings.docker, workers=settings.workers, stop_grace_s=settings.stop_grace_s,
                   **({"note": note} if note else {}))

    def __init__(self, settings: DockerSettings | None = None, note: Callable[[str], None] = log.info,
                 client=None, workers: int = 1, stop_grace_s: float = STOP_GRACE_S):
        self.settings = settings or DockerSettings()
        self.workers = workers  # processes in the one container of a data-parallel stage (train)
        self.note = note
        self._client = client
        self.stop_grace_s = stop_grace_s

    def check(self) -> None:
        self.client()

    def client(self):
        if self._client is None:
            from backpropagate.runtimes.engine import connect

            self._client = connect()
        return self._client

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        from backpropagate.images.ensure import ensure_image

        client = self.client()
        entry = stage_named(stage)
        needs = entry.needs(read_spec(entry.spec, spec_path))
        spec = spec_data(spec_path)
        gpus, fallback = resolve(parse_gpus(self.settings.gpus), needs.gpu, self._probe)
        if fallback:
            on_event(Envelope(run_id=str(spec.get("run_id", "")), stage=HOST,
                              event=events.Warning(code="gpu_fallback", message=fallback)))
        variant = "cuda" if gpus.wants_gpu else "cpu"
        image = ensure_image(client, entry.image, variant, self.settings, self.note)
        mounts = plan_mounts(spec_path, spec["run_dir"])
        paths = PathMap([mount.host for mount in mounts])
        inner_spec = self._container_spec(spec_path, spec, paths)
        _remove_leftovers(client, str(spec.get("run_id", "")))
        container = watch = None
        try:
            container = client.containers.create(
                image,
                entrypoint=stage_command(stage, self.workers),
                command=["--spec", inner_spec],
                user=_host_user(),
                mounts=_sdk_mounts(mounts),
                environment={**_environment(needs.network), HOST_WATCH_VARIABLE: "stdin"},
                network_mode=None if needs.network else "none",
                device_requests=device_requests(gpus),
                labels={LABEL: stage, RUN_LABEL: str(spec.get("run_id", ""))},
                init=True,  # signals reach the stage, and the converters' child processes are reaped
                working_dir="/workspace",
                # Workers on one GPU box share tensors through /dev/shm; Docker's default 64 MB is too small.
                shm_size="2g" if self.workers > 1 else None,
                # Not detached, the SDK sets StdinOnce with it: the engine closes the stage's stdin when
                # this process's attachment ends.
                stdin_open=True,
            )
            watch = container.attach_socket(params={"stdin": 1, "stream": 1})
            container.start()
        except Exception as exc:  # the SDK raises APIError and friends; all mean the same to the user
            _close(watch)
            if container is not None:
                container.remove(force=True)
            raise BackpropError("RUNTIME_CONTAINER_FAILED", stage=stage,
                                reason=str(getattr(exc, "explanation", None) or exc)) from None
        stopper = Stopper(lambda name: _signal(container, name), self.stop_grace_s)
        try:
            heard: list[Envelope] = []
            code = self._follow(container, lambda envelope: (heard.append(envelope), on_event(envelope)), paths,
                                stopper)
            stderr_tail = container.logs(stdout=False, stderr=True, tail=40).decode("utf-8", "replace")
        finally:
            stopper.close()
            _close(watch)
            container.remove(force=True)
        stopper.end_if_overdue(stage, spec_path, on_event)
        if code in NOT_STARTED and not heard:
            # The image could not start the stage program at all (no python, a broken image): the image's
            # fault, not the stage's, so the fix is about the image.
            lines = stderr_tail.strip().splitlines()
            raise BackpropError("RUNTIME_CONTAINER_FAILED", stage=stage,
                                reason=lines[-1] if lines else f"exit code {code} before the stage started")
        return StageExit(code=code, stderr_tail=stderr_tail)

    def _probe(self) -> str | None:
        images = self.client().images.list()
        if not images:
            return "the engine has no image to probe with"
        return probe(self.client(), images[0].id)

    def _container_spec(self, spec_path: Path, spec: dict, paths: PathMap) -> str:
        """The spec path the container reads: the same file, or a copy with container paths (Windows)."""
        mapped = paths.to_container(spec)
        if mapped == spec:
            return container_path(str(spec_path))
        copy = Path(spec_path).with_suffix(".container.json")
        write_spec_data(mapped, copy)
        return container_path(str(copy))

    def _follow(self, container, on_event: Callable[[Envelope], None], paths: PathMap, stopper: Stopper) -> int:
        """Hand each event over as it arrives; a stop request is passed on as the Stopper says."""
        with stopper.listening():
            pending = ""
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=False):
                # Chunks are not line-aligned: re-split them.
                pending += chunk.decode("utf-8", "replace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._hand_over(line, on_event, paths)
            if pending.strip():
                self._hand_over(pending, on_event, paths)
            return int(container.wait().get("StatusCode", 1))

    @staticmethod
    def _hand_over(line: str, on_event: Callable[[Envelope], None], paths: PathMap) -> None:
        try:
            envelope = parse_line(line)
        except EventParseError as exc:
            log.debug("stage printed a non-event line (%s): %s", exc, line.rstrip())
            return
        mapped = paths.to_host(json.loads(line))
        on_event(envelope if mapped == json.loads(line) else parse_line(json.dumps(mapped)))


def _signal(container, name: str) -> None:
    try:
        container.kill(signal=name)
    except Exception as exc:  # already gone
        log.debug("could not signal the container: %s", exc)


def _close(watch) -> None:
    if watch is not None:
        try:
            watch.close()
        except OSError:
            pass


def _remove_leftovers(client, run_id: str) -> None:
    """Containers of this run that a dead host left (stopped by their stage's watch): the caller holds the
    run now, so none of them is anyone's live stage."""
    if not run_id:
        return
    for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
        try:
            container.remove(force=True)
        except Exception as exc:  # removed meanwhile
            log.debug("could not remove a leftover container: %s", exc)


def _host_user() -> str | None:
    if hasattr(os, "getuid"):
        return f"{os.getuid()}:{os.getgid()}"
    return None  # Docker Desktop on Windows maps file ownership itself


def _sdk_mounts(mounts) -> list:
    from docker.types import Mount

    result = [Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only) for m in mounts]
    result.append(Mount(target=HF_CACHE_TARGET, source=HF_CACHE_VOLUME, type="volume"))
    return result


def _environment(network: bool) -> dict[str, str]:
    environment = {"PYTHONUNBUFFERED": "1"}
    if not network:
        environment["HF_HUB_OFFLINE"] = "1"
    for name in SECRET_VARIABLES + PASSED_VARIABLES:
        if os.environ.get(name):
            environment[name] = os.environ[name]
    return environment
