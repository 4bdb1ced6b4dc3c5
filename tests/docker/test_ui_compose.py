"""`docker compose up ui`: the web UI in its own container, published on 127.0.0.1 only, trains a run
started from its HTTP forms into its named volume, and still shows it after the service is recreated.

Slow for the docker tier (26 s here on 2 cores: 14 s building the tiny model, shared with other tests, and
11 s for the service, started twice, and a 3-step training of the tiny model in the container), because
the real compose service and a real training are the point. The ui image is built by scripts/test.sh
with the others (`backprop images build`), on the train image's layers: about 3 s of the 39 s cold build of both.
"""

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from tests.conftest import ROOT, free_port
from tests.docker.conftest import DOCKER_SETTINGS

DATA = ROOT / "examples" / "quickstart.jsonl"
FOLDER = "/data/ui-outputs"  # the volume's mount point in compose.yaml


class Browser:
    """An HTTP client that keeps the UI's session cookie and does not follow redirects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  _NoRedirect())

    def get(self, path: str) -> tuple[int, str, str]:
        return self._send(urllib.request.Request(self.url + path))

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(fields).encode()
        return self._send(urllib.request.Request(self.url + path, data=body, method="POST"))

    def post_file(self, path: str, field: str, name: str, content: bytes) -> tuple[int, str, str]:
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n")
        body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return self._send(request)

    def _send(self, request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(), response.headers.get("location", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers.get("location", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
def compose_ui(tiny_model):
    """The compose `ui` service under a project of its own, on a free port; torn down with its volume."""
    from backpropagate.images.recipes import RECIPES, image_ref

    wanted = image_ref(RECIPES["ui"], "cpu", DOCKER_SETTINGS.get("BACKPROPAGATE_DOCKER__BASE_IMAGE", ""))
    ids = [subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True,
                          text=True).stdout.strip() for ref in (wanted, wanted.rsplit("-", 1)[0])]
    assert ids[0] and ids[0] == ids[1], f"compose's tag is not this checkout's ui image {wanted}: backprop images build"
    project = f"backprop-ui-test-{os.getpid()}"
    port = free_port()
    env = {**os.environ, "BACKPROP_UI_PORT": str(port)}
    compose = ["docker", "compose", "-p", project, "-f", "compose.yaml"]

    def run(*args, check=True, timeout=120):
        done = subprocess.run([*compose, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0 or not check, f"docker compose {' '.join(args)}: {done.stderr[-2000:]}"
        return done

    try:
        yield run, f"http://127.0.0.1:{port}", port
    finally:
        run("down", "--timeout", "20", check=False)
        subprocess.run(["docker", "volume", "rm", "-f", f"{project}_ui-outputs"], capture_output=True)


def _first_200(url: str, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if urllib.request.urlopen(url + "/", timeout=2).status == 200:
                return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no 200 from {url} in {timeout} s")


def _list_runs(run) -> list[dict]:
    done = run("exec", "-T", "ui", "python", "-m", "backpropagate", "list-runs", "--output", FOLDER, "--json")
    return json.loads(done.stdout.strip().splitlines()[-1])["result"]["runs"]


def test_compose_up_ui_serves_on_loopback_and_a_training_started_from_its_forms_completes_in_its_volume(
        compose_ui, tiny_model, tmp_path):
    run, url, port = compose_ui
    run("up", "-d", "ui")
    print(f"docker compose up -d ui to the first 200: {_first_200(url):.1f} s")
    assert run("port", "ui", "7860").stdout.strip() == f"127.0.0.1:{port}"  # published on loopback only

    # The model goes into the UI's folder, as a user would put one there; the dataset through the upload form.
    model = tmp_path / "tiny"
    shutil.copytree(tiny_model, model)
    run("cp", str(model), f"ui:{FOLDER}/tiny")
    browser = Browser(url)
    status, page, _ = browser.get("/runs/new")
    assert status == 200  # no login: the rule for a port published on loopback (with --auth this is a 401)
    token = _csrf(page)
    status, _, location = browser.post_file(f"/datasets?csrf={token}", "file", "quickstart.jsonl", DATA.read_bytes())
    assert status == 303 and "dataset=quickstart.jsonl" in location
    status, _, location = browser.post_form("/runs/new", {
        "csrf": token, "dataset": "quickstart.jsonl", "model": "tiny", "steps": "3", "device": "cpu",
        "max_seq_length": "256", "runtime": "local"})
    assert status == 303 and location.startswith("/runs/"), location
    run_id = location.rsplit("/", 1)[-1]

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = {row["run_id"]: row for row in _list_runs(run)}
        if runs.get(run_id, {}).get("status") not in (None, "running"):
            break
        time.sleep(3)
    assert runs[run_id]["status"] == "completed", runs[run_id]
    status, page, _ = browser.get(location)
    assert status == 200 and '<span id="status" class="status-completed">completed</span>' in page

    # The volume outlives the container: recreated, the service still lists the run.
    run("down", "--timeout", "20")
    run("up", "-d", "ui")
    _first_200(url)
    runs_page = Browser(url).get("/")[1]
    assert re.search(rf'<a href="/runs/{run_id}">{run_id[:8]}</a></td>\s*<td class="status-completed">completed</td>',
                     runs_page)
