"""Downloads of a run's artifacts: only the files its page lists, from inside the UI's folder, with ranges."""

import hashlib
import json
import os
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from tests.unit.test_ui_security import client_for, logged_in

RUN = "0123abcd-0000-4000-8000-000000000000"
GGUF = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def run(tmp_path):
    """A UI folder holding one completed run with a GGUF, an adapter, a report, its events and a private spec."""
    root = tmp_path / "ui"
    client = client_for(root)
    logged_in(client)
    folder = root / RUN
    (folder / "gguf").mkdir(parents=True)
    (folder / "adapter").mkdir()
    (folder / "gguf" / "model-q8_0.gguf").write_bytes(GGUF)
    (folder / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (folder / "quality.json").write_text("{}")
    (folder / "events.jsonl").write_text("")
    (folder / "spec.json").write_text('{"private": "not for download"}')
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": RUN, "status": "completed", "model": "m", "run_dir": str(folder)}]}))
    return client, root, folder


def test_the_run_page_links_every_artifact_and_each_link_serves_the_file(run):
    client, _, folder = run
    page = client.get(f"/runs/{RUN}").text
    for path in ("gguf/model-q8_0.gguf", "adapter/adapter_config.json", "quality.json", "events.jsonl"):
        assert f'href="/runs/{RUN}/files/{path}" download' in page, path
        response = client.get(f"/runs/{RUN}/files/{path}")
        assert response.status_code == 200 and response.content == (folder / path).read_bytes()
    whole = client.get(f"/runs/{RUN}/files/gguf/model-q8_0.gguf")
    assert whole.headers["accept-ranges"] == "bytes"
    assert 'filename="model-q8_0.gguf"' in whole.headers["content-disposition"]
    assert hashlib.sha256(whole.content).hexdigest() == hashlib.sha256(GGUF).hexdigest()


def test_a_range_request_gets_206_with_those_bytes_and_a_bad_range_gets_416(run):
    client, _, _ = run
    url = f"/runs/{RUN}/files/gguf/model-q8_0.gguf"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == GGUF[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(GGUF)}"
    tail = client.get(url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == GGUF[-16:]
    resumed = client.get(url, headers={"Range": "bytes=10000-"})
    assert resumed.status_code == 206 and resumed.content == GGUF[10000:]
    beyond = client.get(url, headers={"Range": f"bytes={len(GGUF)}-{len(GGUF) + 10}"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(GGUF)}"


def test_nothing_but_a_listed_regular_file_inside_the_run_folder_is_served(run, tmp_path):
    client, root, folder = run
    (tmp_path / "secret.gguf").write_bytes(b"outside")
    (folder / "gguf" / "link-out.gguf").symlink_to(tmp_path / "secret.gguf")
    (folder / "gguf" / "link-in.gguf").symlink_to(folder / "spec.json")
    os.mkfifo(folder / "gguf" / "pipe.gguf")
    page = client.get(f"/runs/{RUN}").text
    assert "link-out" not in page and "link-in" not in page and "pipe.gguf" not in page
    refused = {
        "gguf/link-out.gguf": (400, "it leads out of the folder through a symlink"),
        "..%2F..%2Fsecret.gguf": (400, "'..' is refused"),
        "%2Fetc%2Fpasswd": (400, "absolute paths are refused"),
        "spec.json": (404, "it is not one of this run's artifacts"),
        "gguf/link-in.gguf": (404, "it is not one of this run's artifacts"),
        "gguf/pipe.gguf": (404, "it is not one of this run's artifacts"),
        "gguf": (404, "it is not one of this run's artifacts"),
    }
    for path, (status, reason) in refused.items():
        response = client.get(f"/runs/{RUN}/files/{path}")
        assert response.status_code == status, path
        assert response.text.startswith("[INPUT_UI_PATH_OUTSIDE]: ") and reason in response.text, response.text
        assert b"outside" not in response.content and b"private" not in response.content


def test_a_download_needs_the_login(run):
    client, root, _ = run
    from tests.unit.test_ui_security import client_for as fresh

    response = fresh(root).get(f"/runs/{RUN}/files/gguf/model-q8_0.gguf")
    assert response.status_code == 401 and GGUF[:64] not in response.content
