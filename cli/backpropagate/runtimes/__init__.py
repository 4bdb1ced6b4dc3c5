"""Runtimes: where a stage program runs. ``local``: a subprocess here; ``docker``: the stage's image;
``ray``: the workers of a Ray cluster (asked for by name only).

``auto`` picks the first runtime of the registry that can run here: Docker when an engine answers,
else local when the ML stack imports (a fallback the caller announces), else stops with
DEP_NO_RUNTIME naming every way to fix it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError
from backpropagate.runtimes.base import Runtime, StageExit
from backpropagate.runtimes.local import LocalRuntime
from backpropagate.runtimes.registry import AUTO, runtime_class


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    asked: str  # auto, docker or local
    why: str  # for people: why this runtime


def choose_runtime(name: str, settings=None, note: Callable[[str], None] | None = None,
                   local: LocalRuntime | None = None) -> RuntimeChoice:
    """The runtime ``name`` made from ``settings`` (config.Settings; None: the defaults): its section of them, and
    the workers of a data-parallel stage and the stop grace, which every runtime reads."""
    made: dict[str, Runtime] = {"local": local} if local else {}
    if settings is None:
        from backpropagate.config import Settings

        settings = Settings()

    def runtime(candidate: str) -> Runtime:
        if candidate not in made:
            made[candidate] = runtime_class(candidate).from_settings(settings, note)
        return made[candidate]

    if name != "auto":
        return RuntimeChoice(runtime(name), name, f"--runtime {name}")
    refused: dict[str, BackpropError] = {}
    for candidate in AUTO:
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
