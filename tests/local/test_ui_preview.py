"""The new-run form's preview: the picked dataset's first rows as the picked model's chat template renders
them and the token-length histogram, both from `backprop validate` run on the tiny model. The app is driven
in-process (Starlette's TestClient); the preview itself is the real CLI in a child process."""

import html
import json
import re
import shutil
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

from tests.conftest import ROOT

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def test_preview_renders_the_first_rows_with_the_models_template_and_histograms_their_token_lengths(
        tiny_model, tmp_path):
    root = tmp_path / "ui"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "datasets").mkdir(parents=True)
    shutil.copy(QUICKSTART, root / "datasets")
    client = TestClient(create_app(UiConfig(sandbox=Sandbox(root), credentials=None, runtime="local")))
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/runs/new").text).group(1)
    form = {"dataset": "quickstart.jsonl", "model": "models/tiny", "max_seq_length": "32", "steps": "7"}
    assert client.post("/datasets/preview", data=form).status_code == 403  # no CSRF token: refused

    page = client.post("/datasets/preview", data={**form, "csrf": token})
    assert page.status_code == 200, page.text

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = [json.loads(line)["messages"] for line in QUICKSTART.read_text().splitlines()]
    rendered = re.findall(r'<pre class="rendered">(.*?)</pre>', page.text, re.S)
    assert [html.unescape(text) for text in rendered] == [
        tokenizer.apply_chat_template(messages, tokenize=False) for messages in rows[:3]]
    lengths = [len(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]) for messages in rows]
    counts = [int(n) for n in re.findall(r'<td class="count">(\d+)</td>', page.text)]
    assert sum(counts) == len(rows) and len(counts) > 1
    first = re.search(r'<table id="histogram".*?<th>(\d+)', page.text, re.S).group(1)
    assert int(first) == min(lengths)
    assert f"{sum(n > 32 for n in lengths)} over the max length 32" in page.text
    # The form comes back as it was sent, ready to start the run.
    assert 'name="steps" type="number"' in page.text and 'value="7"' in page.text

    outside = client.post("/datasets/preview", data={**form, "csrf": token, "dataset": "../../etc/passwd"})
    assert outside.status_code == 400 and "INPUT_UI_PATH_OUTSIDE" in outside.text
