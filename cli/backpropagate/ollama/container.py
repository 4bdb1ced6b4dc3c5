"""Starting the pinned upstream Ollama image when no server answers (``--ollama-container``).

The container keeps Ollama's usual named volume (``ollama:/root/.ollama``), so the
models registered into it are the ones ``docker run ... ollama/ollama`` would see,
and it is left running afterwards so that ``ollama run NAME`` (or the API) answers.
"""

import time
from typing import Any
from urllib.parse import urlsplit

from backpropagate.contract.errors import BackpropError
from backpropagate.ollama.client import OllamaClient

OLLAMA_IMAGE = "ollama/ollama:0.32.15"
CONTAINER_NAME = "backprop-ollama"
VOLUME = "ollama"
LABEL = {"org.backpropagate.role": "ollama"}


def container_settings(url: str) -> dict[str, Any]:
    """Arguments for docker's containers.create: image, name, volume, and the port OLLAMA_HOST names."""
    port = urlsplit(url).port or 11434
    return {"image": OLLAMA_IMAGE, "name": CONTAINER_NAME, "detach": True, "labels": dict(LABEL),
            "ports": {"11434/tcp": ("127.0.0.1", port)},
            "volumes": {VOLUME: {"bind": "/root/.ollama", "mode": "rw"}}}


def start_container(client: OllamaClient, wait_s: float = 60.0) -> None:
    """Start (or restart) the Ollama container and wait until its API answers."""
    from backpropagate.runtimes.engine import connect

    try:
        engine = connect()  # DOCKER_HOST, the current docker context, or the platform's default socket or pipe
    except BackpropError as error:  # its fix names --runtime, which does not help here
        raise BackpropError("DEP_OLLAMA_CONTAINER_FAILED", image=OLLAMA_IMAGE, reason=error.message) from None
    from docker.errors import DockerException, ImageNotFound, NotFound

    try:
        try:
            engine.containers.get(CONTAINER_NAME).start()
        except NotFound:
            try:
                engine.images.get(OLLAMA_IMAGE)
            except ImageNotFound:
                engine.images.pull(OLLAMA_IMAGE)
            container = engine.containers.create(**container_settings(client.url))
            try:
                container.start()
            except BaseException:
                container.remove(force=True)  # a container that never started is not left behind
                raise
    except DockerException as exc:
        raise BackpropError("DEP_OLLAMA_CONTAINER_FAILED", image=OLLAMA_IMAGE, reason=str(exc)) from None
    _wait_for_api(client, wait_s)


def _wait_for_api(client: OllamaClient, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.version()
            return
        except BackpropError as error:
            if time.monotonic() > deadline:
                raise BackpropError("DEP_OLLAMA_CONTAINER_FAILED", image=OLLAMA_IMAGE,
                                    reason=f"its API did not answer within {wait_s:.0f}s ({error.message})") from None
            time.sleep(1.0)


def ensure_server(client: OllamaClient, use_container: bool) -> None:
    """Check that a server answers; with ``use_container``, start one in Docker when none does."""
    try:
        client.version()
    except BackpropError as error:
        if error.code != "DEP_OLLAMA_REGISTRATION_FAILED" or not use_container:
            raise
        start_container(client)
