"""Every runtime, by name: a new runtime is its module and one line here (and in AUTO, if `auto` may pick it).

Each entry names its class as ``module:Class`` so nothing is imported until a run asks for it;
a class takes ``(settings, note)`` through its ``from_settings``.
"""

from importlib import import_module

RUNTIMES: dict[str, str] = {
    "docker": "backpropagate.runtimes.docker:DockerRuntime",
    "local": "backpropagate.runtimes.local:LocalRuntime",
    "ray": "backpropagate.runtimes.ray:RayRuntime",
}
RUNTIME_NAMES = tuple(RUNTIMES)
# What `--runtime auto` tries, in order. Never Ray: a cluster is a choice the user makes (--runtime ray).
AUTO = ("docker", "local")


def runtime_class(name: str) -> type:
    module, _, cls = RUNTIMES[name].partition(":")
    return getattr(import_module(module), cls)
