"""Finding the Docker engine the way the `docker` CLI does, and connecting to it with the Docker SDK.

Order: DOCKER_HOST; else the current context (DOCKER_CONTEXT, or ``currentContext`` in the CLI's
config.json), whose endpoint the CLI keeps under ``contexts/meta/<sha256 of the name>/meta.json``
(this is how Docker Desktop's ``desktop-linux`` socket is found); else the platform default: the
named pipe on Windows, /var/run/docker.sock elsewhere. The SDK's own ``from_env`` knows only the
first and the last.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from backpropagate.contract.errors import BackpropError

WINDOWS_PIPE = "npipe:////./pipe/docker_engine"
UNIX_SOCKET = "unix:///var/run/docker.sock"


def engine_url(env: dict[str, str] | None = None, platform: str | None = None) -> tuple[str, str]:
    """The engine's address and where it came from (for messages): ``(url, source)``."""
    env = dict(os.environ) if env is None else env
    platform = platform or sys.platform
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], "DOCKER_HOST"
    home = env.get("USERPROFILE" if platform == "win32" else "HOME") or "~"
    config_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path(home).expanduser() / ".docker"
    name = env.get("DOCKER_CONTEXT") or _current_context(config_dir)
    if name and name != "default":
        meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
        try:
            host = json.loads(meta.read_text(encoding="utf-8"))["Endpoints"]["docker"]["Host"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BackpropError("DEP_DOCKER_UNAVAILABLE",
                                reason=f"docker context {name!r} has no readable endpoint in {meta}") from None
        return host, f"docker context {name}"
    return (WINDOWS_PIPE if platform == "win32" else UNIX_SOCKET), "default"


def _current_context(config_dir: Path) -> str | None:
    try:
        return json.loads((config_dir / "config.json").read_text(encoding="utf-8")).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return None


def connect(timeout: float = 60):
    """A Docker SDK client for the engine, checked with a ping; DEP_DOCKER_UNAVAILABLE when none answers."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise BackpropError("DEP_DOCKER_UNAVAILABLE", reason=f"the Docker SDK does not import ({exc})") from None
    url, source = engine_url()
    try:
        if source == "DOCKER_HOST":
            client = docker.from_env(timeout=timeout)  # also honours DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
        else:
            client = docker.DockerClient(base_url=url, version="auto", timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise BackpropError("DEP_DOCKER_UNAVAILABLE", reason=f"{url} ({source}): {_short(exc)}") from None
    return client


def _short(exc: Exception) -> str:
    """The engine's problem in words: the socket error underneath requests' wrapping when there is one
    (("Connection aborted.", FileNotFoundError(2, ...)) reads as "no engine listens there"), else its first line."""
    cause = _socket_error(exc)
    if isinstance(cause, FileNotFoundError):
        return "its socket does not exist: no engine is started there"
    if isinstance(cause, ConnectionRefusedError):
        return "the connection was refused: no engine is started there"
    if isinstance(cause, PermissionError):
        return "permission denied on its socket: add your user to the docker group, or run as root"
    if isinstance(cause, TimeoutError):
        return "it did not answer in time"
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _socket_error(exc: BaseException, depth: int = 0) -> OSError | None:
    """The socket's own error among an exception's causes and arguments (requests and urllib3 wrap it in both)."""
    if depth > 8:
        return None
    inner = [exc.__cause__, exc.__context__, *(arg for arg in exc.args if isinstance(arg, BaseException))]
    for found in inner:
        if isinstance(found, (FileNotFoundError, ConnectionRefusedError, PermissionError, TimeoutError)):
            return found
        deeper = None if found is None else _socket_error(found, depth + 1)
        if deeper is not None:
            return deeper
    return None
