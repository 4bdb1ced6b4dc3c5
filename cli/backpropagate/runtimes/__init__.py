"""Runtimes: where a stage program runs. ``local``: a subprocess here; ``docker``: the stage's image.

``auto`` picks Docker when an engine answers, else local when the ML stack imports, else stops
with DEP_NO_RUNTIME naming both ways to fix it.
"""

from collections.abc import Callable

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import DockerSettings
from backpropagate.runtimes.base import Runtime, StageExit
from backpropagate.runtimes.local import LocalRuntime

RUNTIME_NAMES = ("auto", "docker", "local")


def get_runtime(name: str, docker: DockerSettings | None = None, note: Callable[[str], None] | None = None
                ) -> Runtime:
    from backpropagate.runtimes.docker import DockerRuntime

    if name == "local":
        return LocalRuntime()
    runtime = DockerRuntime(docker, **({"note": note} if note else {}))
    if name == "docker":
        return runtime
    try:
        runtime.check()
        return runtime
    except BackpropError as no_docker:
        try:
            LocalRuntime().check()
            return LocalRuntime()
        except BackpropError as no_local:
            raise BackpropError("DEP_NO_RUNTIME", docker=no_docker.message, local=no_local.message) from None


__all__ = ["RUNTIME_NAMES", "Runtime", "StageExit", "get_runtime"]
