"""The docker tier: stages in their images on a real Docker engine, through the `backprop` CLI.

scripts/test.sh sets up the engine (scripts/setup_docker.sh), builds the CPU images with
`backprop images build`, and passes the build settings it used (base image, CA certificate,
wheelhouse) as BACKPROPAGATE_DOCKER__* variables, which these tests hand to every command so
that the images they expect are the ones built. Without an engine the tier is skipped with the
reason; with REQUIRE_DOCKER_TIER=1 (CI) that is a failure instead.
"""

import json
import os
import time

import pytest

from tests.conftest import run_cli

# Captured at import, before the autouse fixture clears BACKPROPAGATE_* for each test.
DOCKER_SETTINGS = {name: value for name, value in os.environ.items() if name.startswith("BACKPROPAGATE_DOCKER__")}
LABEL = "backpropagate.stage"


def _engine_reason() -> str | None:
    try:
        from backpropagate.runtimes.engine import connect

        connect(timeout=10)
    except Exception as exc:  # BackpropError or the SDK's own: either way no tier
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    docker_items = [item for item in items if "tests/docker" in str(item.path).replace(os.sep, "/")]
    if not docker_items:
        return
    reason = _engine_reason()
    if reason is None:
        return
    if os.environ.get("REQUIRE_DOCKER_TIER") == "1":
        raise pytest.UsageError(f"docker tier required but no engine answers: {reason}")
    for item in docker_items:
        item.add_marker(pytest.mark.skip(reason=f"docker tier: no Docker engine answers ({reason}); "
                                                "bash scripts/test.sh sets one up as root"))


@pytest.fixture(scope="session")
def client():
    from backpropagate.runtimes.engine import connect

    return connect()


@pytest.fixture
def no_leftover_containers(client):
    """Counts this project's stage containers before and after the test: none may be left behind."""
    def ours():
        return [c.id for c in client.containers.list(all=True) if LABEL in c.labels or "backpropagate.probe"
                in c.labels]

    before = ours()
    yield
    # The engine finishes removing a container whose attached stdin was just closed a moment after the
    # host's remove call returns: give it a few seconds before calling it left behind.
    deadline = time.monotonic() + 15
    while ours() != before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ours() == before, "a stage container was left behind"


def docker_cli(*args, env=None, **kwargs):
    """`backprop` with the docker runtime and the image build settings of this test run."""
    return run_cli(*args, env={**DOCKER_SETTINGS, "BACKPROPAGATE_RUNTIME": "docker", **(env or {})}, **kwargs)


def events_of(stdout: str) -> list[dict]:
    """The JSON-line events a `--json` command printed."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"v"')]
