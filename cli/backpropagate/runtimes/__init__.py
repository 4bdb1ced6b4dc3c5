"""Runtimes: where a stage program runs. ``local``: a subprocess here; ``docker``: the stage's image.

``auto`` picks the first runtime of the registry that can run here: Docker when an engine answers,
else local when the ML stack imports (a fallback the caller announces), else stops with
DEP_NO_RUNTIME naming every way to fix it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import DockerSettings
from backpropagate.runtimes.base import Runtime, StageExit
from backpropagate.runtimes.local import LocalRuntime
from backpropagate.runtimes.registry import RUNTIME_NAMES, runtime_class
from backpropagate.runtimes.stopping import STOP_GRACE_S


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    asked: str  # auto, docker or local
    why: str  # for people: why this runtime


def choose_runtime(name: str, docker: DockerSettings | None = None, note: Callable[[str], None] | None = None,
                   local: LocalRuntime | None = None, workers: int = 1,
                   stop_grace_s: float = STOP_GRACE_S) -> RuntimeChoice:
    """``workers``: processes for a data-parallel stage (train); other stages run as one. ``stop_grace_s``: how
    long a stage may take to stop after Ctrl-C, SIGTERM or SIGHUP before it is killed."""
    made: dict[str, Runtime] = {"local": local} if local else {}

    def runtime(candidate: str) -> Runtime:
        if candidate not in made:
            made[candidate] = runtime_class(candidate).from_settings(docker, note, workers, stop_grace_s)
        return made[candidate]

    if name != "auto":
        return RuntimeChoice(runtime(name), name, f"--runtime {name}")
    refused: dict[str, BackpropError] = {}
    for candidate in RUNTIME_NAMES:
        try:
            runtime(candidate).check()
        except BackpropError as refusal:
            refused[candidate] = refusal
            continue
        missing = "".join(f"{runtime_class(n).absent} ({e.message}), and " for n, e in refused.items())
        return RuntimeChoice(runtime(candidate), name, f"--runtime auto: {missing}{runtime(candidate).answers}")
    raise BackpropError("DEP_NO_RUNTIME", **{n: e.context.get("reason", e.message) if n == "docker" else e.message
                                             for n, e in refused.items()}) from None


__all__ = ["Runtime", "RuntimeChoice", "StageExit", "choose_runtime"]
