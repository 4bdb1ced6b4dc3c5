"""The run page's chat with its GGUF: shown once a GGUF exists, CSRF-protected, one generation at a time, and
the CLI's coded failure streamed as it came. The file is not a real GGUF (a stand-in: what is checked here
happens before or instead of llama.cpp answering); a real answer, streamed, is the browser test's."""

import asyncio
import json
import re
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from tests.unit.test_ui_security import client_for, logged_in

RUN = "0123abcd-0000-4000-8000-000000000000"


@pytest.fixture
def run(tmp_path):
    """A UI folder holding one completed run, without a GGUF yet; (client, its CSRF token, the run's folder)."""
    root = tmp_path / "ui"
    client = client_for(root)
    token = logged_in(client)
    folder = root / RUN
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("")
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": RUN, "status": "completed", "model": "m", "run_dir": str(folder)}]}))
    return client, token, folder


def with_gguf(folder) -> None:
    (folder / "gguf").mkdir()
    (folder / "gguf" / "model-q8_0.gguf").write_bytes(b"GGUF" + bytes(64))  # a header and nothing llama.cpp can load


def events(text: str) -> list[tuple[str, object]]:
    return [(event, json.loads(data)) for event, data in re.findall(r"event: (\w+)\ndata: (.*)\n\n", text)]


def test_the_chat_box_appears_once_the_run_has_a_gguf(run):
    client, token, folder = run
    assert 'id="chat-form"' not in client.get(f"/runs/{RUN}").text
    no_gguf = client.post(f"/runs/{RUN}/chat", data={"csrf": token, "prompt": "hi"})
    assert no_gguf.status_code == 404 and "export it with format gguf" in no_gguf.text
    with_gguf(folder)
    page = client.get(f"/runs/{RUN}").text
    assert f'action="/runs/{RUN}/chat" id="chat-form"' in page and "model-q8_0.gguf" in page
    assert 'name="max_tokens" type="number" min="1" max="512" value="128"' in page


def test_a_question_without_the_csrf_token_is_refused(run):
    client, _, folder = run
    with_gguf(folder)
    assert client.post(f"/runs/{RUN}/chat", data={"prompt": "hi"}).status_code == 403
    assert client.post(f"/runs/{RUN}/chat", data={"prompt": "hi"}, headers={"X-CSRF-Token": "forged"}).status_code \
        == 403


def test_an_empty_or_overlong_question_is_refused(run):
    client, token, folder = run
    with_gguf(folder)
    for prompt in ("  ", "x" * 4001):
        refused = client.post(f"/runs/{RUN}/chat", data={"csrf": token, "prompt": prompt})
        assert refused.status_code == 400 and "1 to 4,000 characters" in refused.text


def test_a_second_question_while_one_is_answered_waits_its_turn_with_409(run):
    client, token, folder = run
    with_gguf(folder)
    lock = client.app.state.chat_lock
    asyncio.run(lock.acquire())  # as a generation in progress holds it
    try:
        busy = client.post(f"/runs/{RUN}/chat", data={"csrf": token, "prompt": "hi"})
        assert busy.status_code == 409 and "Another answer is being generated" in busy.text
    finally:
        lock.release()


def test_the_clis_coded_failure_reaches_the_page_as_a_failure_event(run):
    pytest.importorskip("llama_cpp", reason="llama.cpp is set up by bash scripts/setup_llama_cpp.sh (the full suite)")
    client, token, folder = run
    with_gguf(folder)
    answer = client.post(f"/runs/{RUN}/chat", data={"csrf": token, "prompt": "hi", "max_tokens": "9999"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    gguf = folder / "gguf" / "model-q8_0.gguf"
    assert events(answer.text) == [("failure", f"[INPUT_GGUF_INVALID]: {gguf} is not a readable GGUF file: failed to "
                                               "load model from file (fix: export it again with `backprop export RUN "
                                               "--format gguf`)")]
    assert not client.app.state.chat_lock.locked()


def test_max_tokens_is_kept_within_its_limit():
    from backpropagate.ui.chat import max_tokens_of

    assert [max_tokens_of(text) for text in ("9999", "0", "64", "", "-3", "ten")] == [512, 1, 64, 128, 128, 128]
