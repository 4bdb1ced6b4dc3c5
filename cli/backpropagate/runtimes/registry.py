"""Every runtime, by name, in the order `--runtime auto` tries them: a new runtime is its module and one line here.

Each entry names its class as ``module:Class`` so nothing is imported until a run asks for it;
a class takes ``(docker settings, note)`` through its ``from_settings``.
"""

from importlib import import_module

RUNTIMES: dict[str, str] = {
    "docker": "backpropagate.runtimes.docker:DockerRuntime",
    "local": "backpropagate.runtimes.local:LocalRuntime",
}
RUNTIME_NAMES = tuple(RUNTIMES)


def runtime_class(name: str) -> type:
    module, _, cls = RUNTIMES[name].partition(":")
    return getattr(import_module(module), cls)
