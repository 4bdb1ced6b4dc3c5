"""The web UI's guard: login, CSRF, the sandbox, upload and login limits, and what `backprop ui` refuses to start.

The app is Starlette's own, driven in-process by its TestClient (real routing, middleware and
templates); the start-up refusals go through the real CLI.
"""

import contextlib
import http.client as http_client
import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.errors import BackpropError
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.auth import Credentials
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

from tests.conftest import run_cli

ROWS = b'{"text": "one"}\n{"text": "two"}\n'
ADA = Credentials("ada", "s3cret-pass")


def client_for(root: Path, credentials: Credentials | None = ADA,
               max_upload_bytes: int = 50 * 1024 * 1024) -> TestClient:
    config = UiConfig(sandbox=Sandbox(root), credentials=credentials, max_upload_bytes=max_upload_bytes)
    return TestClient(create_app(config), follow_redirects=False)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def logged_in(client: TestClient) -> str:
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"user": "ada", "password": "s3cret-pass", "csrf": token}).status_code == 303
    return csrf_of(client.get("/runs/new").text)


def test_every_page_and_stream_answers_401_with_the_login_form_without_credentials(tmp_path):
    client = client_for(tmp_path / "ui")
    for path in ("/", "/runs/new", "/runs/0123abcd", "/runs/0123abcd/events"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert 'action="/login"' in response.text
    assert client.post("/runs/new", data={"dataset": "d.jsonl"}).status_code == 401


def test_a_wrong_password_is_refused_and_the_right_one_opens_a_new_session(tmp_path):
    client = client_for(tmp_path / "ui")
    token = csrf_of(client.get("/login").text)
    before = client.cookies.get("bp_session")
    wrong = client.post("/login", data={"user": "ada", "password": "s3cret-pasS", "csrf": token})
    assert wrong.status_code == 401 and "Wrong user or password." in wrong.text
    right = client.post("/login", data={"user": "ada", "password": "s3cret-pass", "csrf": token})
    assert right.status_code == 303
    assert client.cookies.get("bp_session") != before  # the id seen before login is worth nothing after it
    assert client.get("/").status_code == 200


def test_failed_logins_are_limited_per_client_even_when_the_sixth_try_is_right(tmp_path):
    client = client_for(tmp_path / "ui")
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        assert client.post("/login", data={"user": "ada", "password": "guess", "csrf": token}).status_code == 401
    blocked = client.post("/login", data={"user": "ada", "password": "s3cret-pass", "csrf": token})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    assert client.get("/").status_code == 401


def test_a_form_posted_without_its_csrf_token_or_with_another_is_refused(tmp_path):
    client = client_for(tmp_path / "ui")
    logged_in(client)
    fields = {"dataset": "d.jsonl", "model": "org/model", "steps": "10"}
    for form in (fields, {**fields, "csrf": "forged"}):
        response = client.post("/runs/new", data=form)
        assert response.status_code == 403 and "CSRF token is missing or stale" in response.text
    upload = client.post("/datasets", files={"file": ("d.jsonl", ROWS)})
    assert upload.status_code == 403
    assert not (tmp_path / "ui" / "datasets" / "d.jsonl").exists()
    # The login form is guarded too: a page elsewhere cannot log a visitor in.
    assert TestClient(client.app).post("/login", data={"user": "ada", "password": "s3cret-pass"}).status_code == 403


def test_every_form_the_app_answers_refuses_a_post_without_its_csrf_token_and_one_without_login(tmp_path):
    client = client_for(tmp_path / "ui")
    posts = [route.path.replace("{run_id}", "0123abcd") for route in client.app.routes
             if "POST" in (getattr(route, "methods", None) or ())]
    assert {"/runs/0123abcd/resume", "/runs/0123abcd/replay", "/runs/0123abcd/chat", "/datasets/preview",
            "/runs/plan", "/campaigns/new"} <= set(posts)
    for path in posts:
        if path != "/login":
            assert client.post(path, data={"prompt": "hi"}).status_code == 401, path  # not logged in
    logged_in(client)
    for path in posts:
        assert client.post(path, data={"prompt": "hi", "csrf": "forged"}).status_code == 403, path


@pytest.mark.parametrize("field", ["dataset", "model"])
def test_traversal_absolute_and_symlinked_paths_out_of_the_sandbox_are_refused_with_a_code(tmp_path, field):
    root = tmp_path / "ui"
    client = client_for(root)
    token = logged_in(client)
    (tmp_path / "outside.jsonl").write_bytes(ROWS)
    (root / "datasets" / "d.jsonl").write_bytes(ROWS)
    (root / "datasets" / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    (root / "escape").symlink_to(tmp_path)
    cases = {"../../etc/passwd": "'..' is refused", "/etc/passwd": "absolute paths are refused",
             "~/.ssh/id_rsa": "absolute paths are refused",
             ("link.jsonl" if field == "dataset" else "escape"): "it leads out of the folder through a symlink"}
    for value, reason in cases.items():
        form = {"csrf": token, "dataset": "d.jsonl", "model": "org/model", field: value}
        response = client.post("/runs/new", data=form)
        assert response.status_code == 400, value
        shown = re.search(r'id="start-error">(.*?)</p>', response.text, re.DOTALL).group(1).replace("&#39;", "'")
        assert shown.startswith(f"[INPUT_UI_PATH_OUTSIDE]: '{value}' is not a file inside the UI's folder"), shown
        assert reason in shown
        assert shown.endswith(", or upload it on the New run page)")
    assert json.loads((root / "run_history.json").read_text())["runs"] == [] if (root / "run_history.json").exists() \
        else True


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(tmp_path):
    root = tmp_path / "ui"
    client = client_for(root, max_upload_bytes=1024 * 1024)
    token = logged_in(client)
    big = b'{"text": "' + b"x" * (1024 * 1024) + b'"}\n'
    response = client.post(f"/datasets?csrf={token}", files={"file": ("big.jsonl", big)})
    assert response.status_code == 413
    shown = response.text.replace("&#39;", "'")
    assert "[INPUT_UPLOAD_TOO_LARGE]: the upload is larger than the UI's limit of 1 MB" in shown
    assert "(fix: upload a smaller file, or start the UI with a larger --max-upload-mb)" in shown
    assert list((root / "datasets").iterdir()) == []


def test_an_upload_with_bad_rows_lists_each_and_keeps_nothing(tmp_path):
    root = tmp_path / "ui"
    client = client_for(root)
    token = logged_in(client)
    rows = b'{"text": "fine"}\n{"prompt": "x"}\n{"text": "fine too"}\nnot json\n'
    response = client.post(f"/datasets?csrf={token}", files={"file": ("mixed.jsonl", rows)})
    assert response.status_code == 400
    problems = [p.replace("&#39;", "'") for p in re.findall(r"<li>(.*?)</li>", response.text)]
    assert [p.split(": ")[0] for p in problems] == ["mixed.jsonl:2", "mixed.jsonl:4"]
    assert "not valid JSON" in problems[1]
    assert list((root / "datasets").iterdir()) == []
    good = client.post(f"/datasets?csrf={token}", files={"file": ("../../good.jsonl", ROWS)})
    assert good.status_code == 303 and (root / "datasets" / "good.jsonl").read_bytes() == ROWS  # base name only


def test_the_hf_token_is_never_rendered(tmp_path, monkeypatch):
    token_value = "hf_abcdefghijklmnopqrstuvwxyz0123456789"
    monkeypatch.setenv("HF_TOKEN", token_value)
    root = tmp_path / "ui"
    run_id = "0123abcd-0000-4000-8000-000000000000"
    (root / run_id).mkdir(parents=True)
    (root / run_id / "spec.json").write_text(json.dumps({"model": f"org/m?token={token_value}",
                                                         "training": {"steps": 1}, "lora": {"targets": []}}))
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": run_id, "status": "completed", "model": "org/m", "run_dir": str(root / run_id)}]}))
    client = client_for(root, credentials=None)
    pages = [client.get(path).text for path in ("/", f"/runs/{run_id}", "/runs/new")]
    assert all(token_value not in page for page in pages)
    assert run_id[:8] in pages[0]


def test_the_sandbox_refuses_a_denylisted_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for folder in (Path("/etc/backprop-ui"), tmp_path / ".ssh" / "ui", Path("/"), tmp_path, tmp_path.parent):
        with pytest.raises(BackpropError) as caught:
            Sandbox(folder)
        assert caught.value.code == "CONFIG_UI_OUTPUT_DENIED"
    Sandbox(tmp_path / "ui-outputs")  # a folder of its own is fine


@pytest.mark.parametrize("flags, option", [(["--share"], "--share"), (["--host", "0.0.0.0"], "--host 0.0.0.0"),
                                           (["--host", "192.168.1.20"], "--host 192.168.1.20")])
def test_ui_reachable_from_other_machines_without_auth_exits_3(tmp_path, flags, option):
    result = run_cli("ui", *flags, env={"HOME": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"[INPUT_AUTH_REQUIRED]: {option} lets other machines reach the UI, which then needs credentials",
        f"  fix: add --auth USER:PASSWORD or --auth-file FILE (one line USER:PASSWORD), or drop {option}"]


@pytest.mark.parametrize("flags, option", [(["--share"], "--share"),
                                           (["--host", "192.168.1.20"], "--host 192.168.1.20")])
def test_the_loopback_publication_rule_covers_only_host_0000_not_share_or_another_address(tmp_path, flags, option):
    result = run_cli("ui", *flags, env={"HOME": str(tmp_path), "BACKPROPAGATE_UI__PUBLISHED_ON_LOOPBACK": "1"})
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == (
        f"[INPUT_AUTH_REQUIRED]: {option} lets other machines reach the UI, which then needs credentials")


@contextlib.contextmanager
def served_ui(tmp_path: Path, *flags: str, env: dict | None = None):
    """A real `backprop ui` (uvicorn) on a free port; yields the port, and at the end its output in ``out``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full_env = {name: value for name, value in os.environ.items() if not name.startswith("BACKPROPAGATE_")}
    full_env.update(HOME=str(tmp_path), BACKPROPAGATE_UI__OUTPUT_DIR=str(tmp_path / "ui"),
                    BACKPROPAGATE_RUNTIME="local", **(env or {}))
    server = subprocess.Popen([sys.executable, "-m", "backpropagate", "ui", "--port", str(port), *flags],
                              env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read()
                time.sleep(0.1)
        yield port, out
    finally:
        server.terminate()
        out.append(server.communicate(timeout=30)[0])


def http(port: int, method: str, path: str, headers: dict | None = None, body: dict | None = None):
    """One request to 127.0.0.1:port with exactly these headers (Host among them); (status, headers, text)."""
    connection = http_client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    data = None
    if body is not None:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    result = response.status, response.headers, response.read().decode()
    connection.close()
    return result


def test_host_0000_starts_without_auth_when_the_operator_says_the_port_is_published_on_loopback(tmp_path):
    """What the compose `ui` service relies on: the container listens on 0.0.0.0 and compose publishes the
    port on 127.0.0.1 only, which the CLI cannot see; BACKPROPAGATE_UI__PUBLISHED_ON_LOOPBACK=1 says so."""
    with served_ui(tmp_path, "--host", "0.0.0.0", env={"BACKPROPAGATE_UI__PUBLISHED_ON_LOOPBACK": "1"}) as (port, out):
        assert http(port, "GET", "/")[0] == 200  # the runs page itself: no login was asked for
        # The published port may differ from the one the container listens on: any port, loopback names only.
        assert http(port, "GET", "/", {"Host": "localhost:7860"})[0] == 200
        assert http(port, "GET", "/", {"Host": "evil.example:7860"})[0] == 421
    assert ("backprop ui: no login: BACKPROPAGATE_UI__PUBLISHED_ON_LOOPBACK=1 says this port is published on "
            "127.0.0.1 only") in out[0]


def test_a_dns_rebinding_page_gets_neither_a_csrf_token_nor_an_action_from_the_no_login_ui(tmp_path):
    with served_ui(tmp_path) as (port, _):
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", f"localhost:{port + 1}"):
            status, headers, text = http(port, "GET", "/runs/new", {"Host": host})
            assert status == 421, host
            assert "csrf" not in text and "set-cookie" not in {name.lower() for name in headers}, host
            assert "answers only to the address it was started on" in text
            assert http(port, "POST", "/runs/new", {"Host": host}, {"dataset": "d.jsonl", "model": "m"})[0] == 421
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            status, _, text = http(port, "GET", "/runs/new", {"Host": host})
            assert status == 200 and 'name="csrf"' in text, host
    assert not (tmp_path / "ui" / "run_history.json").exists()


def _failed_logins_then_the_right_one(port: int) -> int:
    """Five wrong passwords, then the right one, each claiming another X-Forwarded-For; the last status."""
    status, headers, text = http(port, "GET", "/login")
    cookie = headers["set-cookie"].split(";")[0]
    token = csrf_of(text)
    for guess in range(5):
        wrong = http(port, "POST", "/login", {"Cookie": cookie, "X-Forwarded-For": f"10.0.0.{guess}"},
                     {"user": "ada", "password": f"guess-{guess}", "csrf": token})
        assert wrong[0] == 401
    return http(port, "POST", "/login", {"Cookie": cookie, "X-Forwarded-For": "10.0.0.99"},
                {"user": "ada", "password": "s3cret-pass", "csrf": token})[0]


def test_the_failed_login_limit_counts_the_connecting_address_whatever_x_forwarded_for_claims(tmp_path):
    with served_ui(tmp_path, "--auth", "ada:s3cret-pass") as (port, _):
        assert _failed_logins_then_the_right_one(port) == 429


def test_a_configured_proxy_is_believed_about_the_client_it_forwards(tmp_path):
    with served_ui(tmp_path, "--auth", "ada:s3cret-pass",
                   env={"BACKPROPAGATE_UI__TRUSTED_PROXIES": "127.0.0.1"}) as (port, _):
        assert _failed_logins_then_the_right_one(port) == 303  # five clients with one failure each


def test_an_auth_file_that_is_not_one_user_password_line_is_refused(tmp_path):
    auth = tmp_path / "auth"
    auth.write_text("ada\n")
    result = run_cli("ui", "--share", "--auth-file", str(auth), env={"HOME": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"[INPUT_AUTH_FILE_INVALID]: auth file {auth} is not usable: it must hold exactly one line USER:PASSWORD",
        f"  fix: write one line USER:PASSWORD into {auth}"]


def test_a_denylisted_ui_folder_from_the_environment_stops_the_ui_before_it_listens(tmp_path):
    result = run_cli("ui", env={"HOME": str(tmp_path), "BACKPROPAGATE_UI__OUTPUT_DIR": "/etc/backprop-ui"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "[CONFIG_UI_OUTPUT_DENIED]: the UI's folder /etc/backprop-ui is, lies in or holds /etc, which the UI never uses",
        "  fix: set BACKPROPAGATE_UI__OUTPUT_DIR to a folder of its own, such as ~/.backpropagate/ui-outputs"]
    assert not Path("/etc/backprop-ui").exists()



def test_a_form_body_over_64_kib_is_refused_before_any_route_reads_it(tmp_path):
    client = client_for(tmp_path / "ui")
    token = logged_in(client)
    response = client.post("/runs/new", data={"csrf": token, "model": "x" * 70_000})
    assert response.status_code == 413


def test_login_redirects_only_within_the_ui(tmp_path):
    client = client_for(tmp_path / "ui")
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"user": "ada", "password": "s3cret-pass", "csrf": token,
                                           "next": "//evil.example/"})
    assert response.headers["location"] == "/"
