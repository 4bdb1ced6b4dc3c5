"""The web UI as the browser tests meet it: `backprop ui` as a real server process, and what a page's console
reports."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    """Until the UI answers its login page (30 s at most); a server that exits fails with what it printed."""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            return
        except OSError:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.1)


@contextlib.contextmanager
def serve_ui(home: Path, *flags: str, env: dict | None = None):
    """`backprop ui FLAGS` on a free port of this machine, HOME at ``home``, none of the developer's
    BACKPROPAGATE_* but ``env``'s; yields its address and stops it after."""
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    child_env.update(HOME=str(home), **(env or {}))
    server = subprocess.Popen([sys.executable, "-m", "backpropagate", "ui", "--port", str(port), *flags],
                              env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def console_errors(page) -> list[str]:
    """The errors ``page`` reports from now on (console errors, failed loads, uncaught exceptions), a list kept
    up to date."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
