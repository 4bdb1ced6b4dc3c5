"""The web UI in a real browser (Debian's chromium, driven by Playwright): log in, upload, train, reload, export.

`backprop ui` runs as a real server process; its runs are the real CLI on the local runtime with
the tiny model. Ollama is the documented-protocol stand-in (tests/unit/ollama_standin.py): no
Ollama server runs here. Screenshots land in the test's tmp folder, or in $UI_SCREENSHOTS.
Slow (about a minute): it trains, merges and converts to GGUF for real, which is what it is for.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.unit.ollama_standin import OllamaStandIn, full_name

CHROMIUM = Path("/usr/bin/chromium")
HF_TOKEN = "hf_uiTestTokenThatMustNeverShowUp0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui_server(tmp_path, tiny_model):
    """`backprop ui` with a login, its folder holding the tiny model; yields (url, folder, ollama stand-in)."""
    folder = tmp_path / "ui-outputs"
    shutil.copytree(tiny_model, folder / "models" / "tiny-llama")
    auth = tmp_path / "auth"
    auth.write_text("ada:correct-horse-battery\n")
    port = _free_port()
    with OllamaStandIn() as ollama:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
        env.update(BACKPROPAGATE_UI__OUTPUT_DIR=str(folder), HOME=str(tmp_path), HF_TOKEN=HF_TOKEN,
                   OLLAMA_HOST=ollama.host, BACKPROPAGATE_RUNTIME="local")
        server = subprocess.Popen([sys.executable, "-m", "backpropagate", "ui", "--port", str(port),
                                   "--auth-file", str(auth), "--runtime", "local"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/login", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        try:
            yield url, folder, ollama
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: bash scripts/test.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _chart_steps(page) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all("#chart circle.point", "els => els.map(e => e.dataset.step)")]


def test_browser_logs_in_uploads_trains_ten_steps_reloads_mid_run_and_exports_a_verified_q8_0(ui_server, browser,
                                                                                                tmp_path):
    url, folder, ollama = ui_server
    shots = Path(os.environ.get("UI_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    seen: list[str] = []  # every page's HTML, to check that the HF token never shows

    # Log in: the first page is the login form, answered with 401.
    assert page.goto(url + "/").status == 401
    page.fill("input[name=user]", "ada")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("#login button")
    page.wait_for_selector("h1:has-text('Runs')")

    # Upload: a file with a bad row is refused row by row; the quickstart file is kept.
    page.goto(url + "/runs/new")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"instruction": "no output"}\n')
    page.set_input_files("#upload input[type=file]", str(bad))
    page.click("#upload button")
    assert page.inner_text("#problems").startswith("bad.jsonl:2: ")
    page.set_input_files("#upload input[type=file]", str(ROOT / "examples" / "quickstart.jsonl"))
    page.click("#upload button")
    rows = len((ROOT / "examples" / "quickstart.jsonl").read_text().splitlines())
    assert f"quickstart.jsonl: every row is valid ({rows} openai rows)" in page.inner_text("#upload-ok")
    page.screenshot(path=str(shots / "1-uploaded.png"), full_page=True)
    seen.append(page.content())

    # Train 10 steps on the tiny model, slow enough per step to reload in the middle.
    page.fill("input[name=model]", "models/tiny-llama")
    page.fill("input[name=steps]", "10")
    page.fill("input[name=lora_r]", "8")
    page.fill("input[name=batch_size]", "8")
    page.fill("input[name=gradient_accumulation]", "16")
    page.select_option("select[name=packing]", "off")
    page.select_option("select[name=device]", "cpu")
    page.select_option("select[name=runtime]", "local")
    page.click("#start")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=120_000)
    run_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#chart circle.point[data-step='3']", timeout=180_000)
    page.screenshot(path=str(shots / "2-training.png"), full_page=True)
    seen.append(page.content())

    # A reload mid-run: the page comes back with the points so far and streams from the last line it had.
    page.reload()
    after = int(page.get_attribute("#progress", "data-after"))
    assert page.get_attribute("#progress", "data-live") == "1", "the run ended before the reload: slow it down"
    rendered = _chart_steps(page)
    assert after > 0 and len(rendered) >= 3
    page.wait_for_selector("#chart circle.point[data-step='10']", timeout=180_000)
    assert _chart_steps(page) == list(range(1, 11))  # each step once: nothing replayed, nothing lost
    page.screenshot(path=str(shots / "3-step-10.png"), full_page=True)
    seen.append(page.content())

    # When the run ends the page renders its final state; export a q8_0 GGUF, verified.
    page.wait_for_selector("#export-form", timeout=120_000)
    assert page.inner_text("#status") == "completed"
    page.select_option("#export-form select[name=format]", "gguf")
    page.select_option("#export-form select[name=quantization]", "q8_0")
    page.click("#export-form button")
    page.wait_for_selector("#verification", timeout=300_000)
    verification = page.inner_text("#verification")
    assert re.search(r"model-q8_0\.gguf: verified: top-1 agreement \d+\.\d%", verification), verification
    page.screenshot(path=str(shots / "4-exported.png"), full_page=True)
    seen.append(page.content())

    # Register it with "Ollama" (the stand-in): the same registration `backprop export --ollama` does.
    page.fill("#ollama-form input[name=name]", "ui-tiny")
    page.click("#ollama-form button")
    page.wait_for_selector("#ollama-job .ok", timeout=120_000)
    assert full_name("ui-tiny") in ollama.models
    page.screenshot(path=str(shots / "5-ollama.png"), full_page=True)
    seen.append(page.content())

    # An ordinary run: the CLI lists it, completed, with the GGUF the UI exported.
    listed = json.loads(run_cli("list-runs", "--output", str(folder), "--json").stdout)["result"]["runs"]
    assert [(r["run_id"], r["status"], r["steps_done"]) for r in listed] == [(run_id, "completed", 10)]
    assert listed[0]["gguf"].endswith("model-q8_0.gguf") and listed[0]["gguf_verify"]["verified"]
    assert seen and all(HF_TOKEN not in html for html in seen)
    assert sorted(p.name for p in shots.iterdir()) == [f"{i}-{n}.png" for i, n in enumerate(
        ("uploaded", "training", "step-10", "exported", "ollama"), start=1)]
