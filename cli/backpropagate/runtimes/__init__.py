"""Runtimes: where a stage program runs. ``local``: a subprocess here; ``docker``: the stage's image.

``auto`` picks Docker when an engine answers, else local when the ML stack imports (a fallback
the caller announces), else stops with DEP_NO_RUNTIME naming both ways to fix it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import DockerSettings
from backpropagate.runtimes.base import Runtime, StageExit
from backpropagate.runtimes.local import LocalRuntime
from backpropagate.runtimes.stopping import STOP_GRACE_S


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    asked: str  # auto, docker or local
    why: str  # for people: why this runtime


def choose_runtime(name: str, docker: DockerSettings | None = None, note: Callable[[str], None] | None = None,
                   local: LocalRuntime | None = None, stop_grace_s: float = STOP_GRACE_S) -> RuntimeChoice:
    from backpropagate.runtimes.docker import DockerRuntime

    local = local or LocalRuntime(stop_grace_s=stop_grace_s)
    if name == "local":
        return RuntimeChoice(local, name, "--runtime local")
    runtime = DockerRuntime(docker, **({"note": note} if note else {}), stop_grace_s=stop_grace_s)
    if name == "docker":
        return RuntimeChoice(runtime, name, "--runtime docker")
    try:
        runtime.check()
        return RuntimeChoice(runtime, name, "--runtime auto: a Docker engine answers")
    except BackpropError as no_docker:
        try:
            local.check()
        except BackpropError as no_local:
            raise BackpropError("DEP_NO_RUNTIME", docker=no_docker.context.get("reason", no_docker.message),
                                local=no_local.message) from None
        return RuntimeChoice(local, name, f"--runtime auto: no Docker engine ({no_docker.message}), "
                                                   "and the ML stack imports here")


__all__ = ["Runtime", "RuntimeChoice", "StageExit", "choose_runtime"]
