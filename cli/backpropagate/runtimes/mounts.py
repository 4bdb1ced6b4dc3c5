"""What a stage container sees of the host: bind mounts for the paths its spec names, and path mapping.

On Linux (and inside WSL2) a host path is mounted at the same path in the container, so the
spec, its symlinks and the paths in the stage's events mean the same on both sides. On Windows
(Docker Desktop with the WSL2 engine) a drive path such as ``C:\\Users\\me\\data.jsonl`` is mounted
from Docker Desktop's view of the drive (``/run/desktop/mnt/host/c/Users/me/data.jsonl``) at
``/host/c/Users/me/data.jsonl``, and the spec the container reads is rewritten to those paths.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from backpropagate.contract.specs import spec_data

_DRIVE = re.compile(r"^([A-Za-z]):[\\/]")


@dataclass(frozen=True)
class Mount:
    host: str  # the path on this machine
    source: str  # as the engine names it
    target: str  # where the container sees it
    read_only: bool


def is_windows_path(path: str) -> bool:
    return bool(_DRIVE.match(path))


def container_path(host_path: str) -> str:
    """Where the container sees ``host_path``: the same path, or /host/<drive>/... for a Windows path."""
    if is_windows_path(host_path):
        windows = PureWindowsPath(host_path)
        return str(PurePosixPath("/host", windows.drive[0].lower(), *windows.parts[1:]))
    return host_path


def mount_source(host_path: str) -> str:
    """How the engine names ``host_path``: Docker Desktop reaches Windows drives under /run/desktop/mnt/host."""
    if is_windows_path(host_path):
        windows = PureWindowsPath(host_path)
        return str(PurePosixPath("/run/desktop/mnt/host", windows.drive[0].lower(), *windows.parts[1:]))
    return host_path


class PathMap:
    """Host paths <-> container paths, for the folders and files a stage is given."""

    def __init__(self, roots: list[str]):
        self.pairs = [(root, container_path(root)) for root in roots]

    def to_container(self, value: Any) -> Any:
        return _map_strings(value, [(host, inner) for host, inner in self.pairs if host != inner])

    def to_host(self, value: Any) -> Any:
        return _map_strings(value, [(inner, host) for host, inner in self.pairs if host != inner])


def _map_strings(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if not pairs:
        return value
    if isinstance(value, dict):
        return {key: _map_strings(item, pairs) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, pairs) for item in value]
    if isinstance(value, str):
        for prefix, replacement in sorted(pairs, key=lambda pair: -len(pair[0])):
            if value == prefix or value.startswith(prefix.rstrip("\\/") + ("\\" if "\\" in prefix else "/")):
                rest = value[len(prefix):].lstrip("\\/")
                joined = replacement.rstrip("/\\") + ("/" if replacement.startswith("/") else "\\")
                return joined + rest.replace("\\", "/") if rest else replacement
    return value


def plan_mounts(spec_path: Path, writable: str) -> list[Mount]:
    """Mounts for a stage: ``writable`` (its run folder) read-write, every other absolute path in the
    spec that exists here read-only (the data file, a local base model, an adapter folder). A path
    that is a symlink also gets its target mounted, so the link resolves inside the container."""
    spec = spec_data(spec_path)
    read_only: set[str] = set()
    for value in _strings(spec):
        if _is_absolute(value) and os.path.exists(value):
            read_only.add(value)
            if os.path.islink(value):
                read_only.add(os.path.realpath(value))
    chosen = [writable]
    for path in sorted(read_only, key=len):
        if not any(_inside(path, folder) for folder in chosen):
            chosen.append(path)
    # The run folder goes last: mounted over a read-only parent, it stays writable.
    order = chosen[1:] + [writable]
    return [Mount(host=path, source=mount_source(path), target=container_path(path), read_only=path != writable)
            for path in order]


def _inside(path: str, folder: str) -> bool:
    separator = "\\" if is_windows_path(folder) else "/"
    return path == folder or path.startswith(folder.rstrip(separator) + separator)


def _is_absolute(value: str) -> bool:
    return value.startswith("/") or is_windows_path(value)


def _strings(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def rebase(value: Any, host_root: str, inner_root: str) -> Any:
    """``value`` (a spec, a path) with every path under ``host_root`` moved under ``inner_root``."""
    return _map_strings(value, [(host_root, inner_root)])
