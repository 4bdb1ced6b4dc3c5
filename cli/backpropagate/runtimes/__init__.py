"""Runtimes: where a stage program runs. Each one is a module with one class; RUNTIMES lists them."""

from backpropagate.runtimes.base import Runtime, StageExit
from backpropagate.runtimes.local import LocalRuntime

RUNTIMES: dict[str, type] = {"local": LocalRuntime}


def get_runtime(name: str) -> Runtime:
    return RUNTIMES[name]()


__all__ = ["RUNTIMES", "Runtime", "StageExit", "get_runtime"]
