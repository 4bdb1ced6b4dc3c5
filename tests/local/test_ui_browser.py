"""The web UI in a real browser (Debian's chromium, driven by Playwright): log in, upload, pick the model, train,
watch the chart, reload, export, download the GGUF; every page at a phone's and a desktop's width, light and dark.

`backprop ui` runs as a real server process; its runs are the real CLI on the local runtime with
the tiny model. Ollama is the documented-protocol stand-in (tests/unit/ollama_standin.py): no
Ollama server runs here. Screenshots land in the test's tmp folder, or in $UI_SCREENSHOTS.
Slow (about a minute): it trains, merges and converts to GGUF for real, which is what it is for.
"""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.unit.ollama_standin import OllamaStandIn, full_name
from tests.web_ui import serve_ui

HF_TOKEN = "hf_uiTestTokenThatMustNeverShowUp0123456789"


@pytest.fixture
def ui_server(tmp_path, tiny_model):
    """`backprop ui` with a login, its folder holding the tiny model; yields (url, folder, ollama stand-in)."""
    folder = tmp_path / "ui-outputs"
    shutil.copytree(tiny_model, folder / "models" / "tiny-llama")
    auth = tmp_path / "auth"
    auth.write_text("ada:correct-horse-battery\n")
    with OllamaStandIn() as ollama:
        env = dict(BACKPROPAGATE_UI__OUTPUT_DIR=str(folder), HF_TOKEN=HF_TOKEN, OLLAMA_HOST=ollama.host,
                   BACKPROPAGATE_RUNTIME="local")
        with serve_ui(tmp_path, "--auth-file", str(auth), "--runtime", "local", env=env) as url:
            yield url, folder, ollama


def _chart_steps(page) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all("#chart circle.point", "els => els.map(e => e.dataset.step)")]


def _chart_line(page, line: str) -> int:
    """How many points the chart's polyline ``line`` (loss-line, lr-line, eval-line) has."""
    return page.eval_on_selector(f"#chart #{line}", "el => el.points.numberOfItems")


def _ticks(page, axis: str) -> list[str]:
    return page.eval_on_selector_all(f"#chart .tick.{axis} text", "els => els.map(e => e.textContent)")


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


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

    # The model picker offers the folder's model besides the presets; a click puts it in the field.
    page.click("#model-list .pick[data-model='models/tiny-llama']")
    assert page.input_value("input[name=model]") == "models/tiny-llama"
    assert "auto trains on the CPU here" in page.inner_text("#device-note")

    # Preview: the first rows as the tiny model's chat template renders them, and the token-length histogram.
    page.click("#preview-button")
    page.wait_for_selector("#preview .rendered", timeout=120_000)
    assert page.inner_text("#preview .rendered").startswith("<|im_start|>user\nWhat is the capital of Veloria?")
    assert sum(int(n) for n in page.eval_on_selector_all("#histogram .count", "els => els.map(e => e.textContent)")) \
        == rows
    assert page.input_value("input[name=model]") == "models/tiny-llama"  # the form is kept for the run

    # Train 10 steps on the tiny model, slow enough per step to reload in the middle, holding out a fifth
    # of the data and measuring it every 5 steps.
    page.fill("input[name=steps]", "10")
    page.fill("input[name=lora_r]", "8")
    page.fill("input[name=batch_size]", "8")
    page.fill("input[name=gradient_accumulation]", "16")
    page.select_option("select[name=packing]", "off")
    page.select_option("select[name=device]", "cpu")
    page.select_option("select[name=runtime]", "local")
    page.fill("input[name=eval_split]", "0.2")
    page.fill("input[name=eval_every]", "5")
    page.click("#start")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=120_000)
    run_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#chart circle.point[data-step='3']", timeout=180_000)
    # The chart has axes with ticks: steps up to the run's total, loss, learning rate on the second axis.
    assert _ticks(page, "x")[0] == "0" and _ticks(page, "x")[-1] == "10"
    assert len(_ticks(page, "y")) >= 2 and len(_ticks(page, "lr")) >= 2
    assert page.eval_on_selector_all("#chart .axis-label", "els => els.map(e => e.textContent)") == \
        ["step", "loss", "learning rate"]
    early = _chart_line(page, "loss-line")
    assert early >= 3 and _chart_line(page, "lr-line") == early
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
    assert _chart_line(page, "loss-line") == 10 > early  # the line grew as the steps came in
    page.screenshot(path=str(shots / "3-step-10.png"), full_page=True)
    seen.append(page.content())

    # When the run ends the page renders its final state; export a q8_0 GGUF, verified.
    page.wait_for_selector("#export-form", timeout=120_000)
    assert page.inner_text("#status") == "completed"
    # The finished run's chart: the held-out loss before training, at step 5 and at the end; values on hover.
    assert page.eval_on_selector_all("#chart circle.eval", "els => els.map(e => +e.dataset.step)") == [0, 5, 10]
    assert _chart_line(page, "eval-line") == 3
    assert page.inner_text("#log").strip(), "the log pane shows the run's log.txt"
    page.hover("#chart circle.point[data-step='5']")
    assert re.fullmatch(r"step 5: loss \d+\.\d{4}, learning rate \d\.\d\de-\d, held-out loss \d+\.\d{4}",
                        page.inner_text("#chart-tip")), page.inner_text("#chart-tip")
    page.select_option("#export-form select[name=format]", "gguf")
    page.select_option("#export-form select[name=quantization]", "q8_0")
    page.click("#export-form button")
    page.wait_for_selector("#verification", timeout=300_000)
    verification = page.inner_text("#verification")
    assert re.search(r"model-q8_0\.gguf: verified: top-1 agreement \d+\.\d%", verification), verification
    page.screenshot(path=str(shots / "4-exported.png"), full_page=True)
    seen.append(page.content())

    # Download the GGUF through its link: the very bytes on disk.
    with page.expect_download() as download:
        page.click("#artifacts a.download[href$='/gguf/model-q8_0.gguf']")
    assert download.value.suggested_filename == "model-q8_0.gguf"
    on_disk = folder / run_id / "gguf" / "model-q8_0.gguf"
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == \
        hashlib.sha256(on_disk.read_bytes()).hexdigest()

    # Chat with it: the answer streams into the page, and it is the one `backprop chat` gives (greedy, same code).
    question = "What is the capital of Veloria?"
    page.fill("#chat-form textarea[name=prompt]", question)
    page.fill("#chat-form input[name=max_tokens]", "16")
    page.click("#chat-form button")
    page.wait_for_selector("#chat-log .chat-answer[data-done='1']", timeout=120_000)
    assert page.inner_text("#chat-log .chat-question") == question
    answer = page.inner_text("#chat-log .chat-answer").strip()
    cli = run_cli("chat", run_id, "--prompt", question, "--max-tokens", "16", "--output", str(folder))
    assert answer and answer == cli.stdout.strip(), cli.stderr

    # Register it with "Ollama" (the stand-in): the same registration `backprop export --ollama` does.
    page.fill("#ollama-form input[name=name]", "ui-tiny")
    page.click("#ollama-form button")
    page.wait_for_selector("#ollama-job .ok", timeout=120_000)
    assert full_name("ui-tiny") in ollama.models
    page.screenshot(path=str(shots / "5-ollama.png"), full_page=True)
    seen.append(page.content())

    # Every page fits a phone's 390 px and a desktop's 1280 px without sideways scrolling, and follows a dark system.
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in (("runs", "/"), ("new", "/runs/new"), ("run", f"/runs/{run_id}")):
            page.goto(url + path)
            page.screenshot(path=str(shots / f"6-{name}-{width}.png"), full_page=True)
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{path} at {width} px is {scroll} px wide"
    assert _luminance(page.evaluate("getComputedStyle(document.body).backgroundColor")) > 0.8
    dark = browser.new_context(color_scheme="dark", viewport={"width": 390, "height": 900})
    dark_page = dark.new_page()
    dark_page.goto(url + "/login")
    dark_page.screenshot(path=str(shots / "7-dark-login-390.png"), full_page=True)
    assert _luminance(dark_page.evaluate("getComputedStyle(document.body).backgroundColor")) < 0.2
    assert dark_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    dark.close()
    page.emulate_media(color_scheme="dark")
    page.goto(url + f"/runs/{run_id}")
    page.screenshot(path=str(shots / "7-dark-run-1280.png"), full_page=True)
    assert _luminance(page.evaluate("getComputedStyle(document.body).backgroundColor")) < 0.2
    assert _luminance(page.evaluate("getComputedStyle(document.querySelector('section')).color")) > 0.6

    # An ordinary run: the CLI lists it, completed, with the GGUF the UI exported.
    listed = json.loads(run_cli("list-runs", "--output", str(folder), "--json").stdout)["result"]["runs"]
    assert [(r["run_id"], r["status"], r["steps_done"]) for r in listed] == [(run_id, "completed", 10)]
    assert listed[0]["gguf"].endswith("model-q8_0.gguf") and listed[0]["gguf_verify"]["verified"]
    assert seen and all(HF_TOKEN not in html for html in seen)
    assert sorted(p.name for p in shots.iterdir()) == sorted([f"{i}-{n}.png" for i, n in enumerate(
        ("uploaded", "training", "step-10", "exported", "ollama"), start=1)] + [
        f"6-{name}-{width}.png" for name in ("runs", "new", "run") for width in (390, 1280)] + [
        "7-dark-login-390.png", "7-dark-run-1280.png"])
