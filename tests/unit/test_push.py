"""`backprop push` against a stand-in of the Hub's HTTP API (tests/unit/hub_standin.py), through the real
CLI and the real huggingface_hub client, with Xet off: what arrives, the card, the coded errors, the token."""

import ast
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.hub.push import PushRequest, push
from backpropagate.hub.target import PushSource

from tests.conftest import run_cli
from tests.unit.hub_standin import HubStandIn
from tests.unit.test_trackers import train_with_trackers

TOKEN = "hf_" + "StandInToken0123456789abcdefghijk"


@pytest.fixture
def hub():
    standin = HubStandIn(token=TOKEN)
    yield standin
    standin.close()


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A planned run with its history row and losses (its stage replayed), and adapter files of real size."""
    monkeypatch.setenv("BACKPROPAGATE_MODEL__NAME", "Qwen/Qwen2.5-0.5B-Instruct")
    plan, _ = train_with_trackers(tmp_path, "none")
    adapter = plan.folder.root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(300_000))
    (adapter / "adapter_config.json").write_text('{"r": 16, "lora_alpha": 32, "peft_type": "LORA"}\n')
    return plan


def push_cli(tmp_path, hub, *args, token=TOKEN):
    env = {"HF_ENDPOINT": hub.url if hub else "http://127.0.0.1:9", "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": token, "HF_HUB_DISABLE_TELEMETRY": "1"}
    return run_cli("push", *args, "--output", str(tmp_path / "out"), env=env)


def assert_code_runs_as_python(card: str) -> None:
    """Every ```python block of a card parses: a reader can paste it."""
    blocks = [part.split("```")[0] for part in card.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        ast.parse(block)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_run_pushed_arrives_byte_identical_with_a_card_the_hub_reads(tmp_path, hub, trained):
    result = push_cli(tmp_path, hub, trained.spec.run_id[:8], "--repo", "me/tiny-adapter", "--private", "--json")
    assert result.returncode == 0, result.stderr
    pushed = hub.files("me/tiny-adapter")
    adapter = trained.folder.root / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert sha256(pushed[name]) == sha256((adapter / name).read_bytes())
    assert sha256(pushed["adapter_model.safetensors"]) in hub.lfs  # the large file went through LFS
    assert hub.repos["me/tiny-adapter"]["private"] is True
    card = pushed["README.md"].decode()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front == {"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "library_name": "peft",
                     "pipeline_tag": "text-generation", "tags": ["backpropagate", "lora"]}
    assert trained.spec.data.sha256 in card and "| final loss | `1.5` |" in card and "| steps | `3` |" in card
    assert "![training loss and learning rate](loss.png)" in card and pushed["loss.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert 'PeftModel.from_pretrained(base, "me/tiny-adapter")' in card
    assert 'from_pretrained("Qwen/Qwen2.5-0.5B-Instruct")' in card
    assert_code_runs_as_python(card)
    assert sorted(os.listdir(adapter)) == ["adapter_config.json", "adapter_model.safetensors"]  # left as it was
    assert not list(trained.folder.root.glob(".push-*"))


def test_a_folder_pushed_to_a_branch_has_no_base_model_and_the_token_is_written_nowhere(tmp_path, hub, trained):
    folder = trained.folder.root / "adapter"
    result = push_cli(tmp_path, hub, str(folder), "--repo", "me/folder-adapter", "--revision", "v1",
                      "--commit-message", "first cut")
    assert result.returncode == 0, result.stderr
    assert "pushed 3 files to" in result.stdout and "(v1, commit " in result.stdout
    assert set(hub.files("me/folder-adapter", "v1")) == {"adapter_config.json", "adapter_model.safetensors",
                                                          "README.md"}
    assert hub.files("me/folder-adapter", "main") == {}
    front = yaml.safe_load(hub.files("me/folder-adapter", "v1")["README.md"].decode().split("---\n")[1])
    assert "base_model" not in front and front["library_name"] == "peft"
    assert_code_runs_as_python(hub.files("me/folder-adapter", "v1")["README.md"].decode())
    assert all(headers.get("Authorization") in (f"Bearer {TOKEN}", None) for _, _, headers in hub.requests)
    assert TOKEN not in result.stdout + result.stderr
    for path in (tmp_path).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_bad_token_is_refused_with_the_coded_error_and_the_token_is_not_printed(tmp_path, hub, trained):
    wrong = "hf_" + "WrongToken" * 4
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "me/tiny-adapter", token=wrong)
    assert result.returncode == 7
    assert result.stderr.strip().splitlines()[-2:] == [
        "[HUB_TOKEN_REJECTED]: the Hub refused the token for me/tiny-adapter (401): Invalid credentials in "
        "Authorization header",
        "  fix: run `hf auth login`, or set HF_TOKEN (or --token-file) to a token with write access to "
        "me/tiny-adapter"]
    assert wrong not in result.stdout + result.stderr and hub.repos == {}


def test_a_token_file_is_read_and_another_users_namespace_is_refused(tmp_path, hub, trained):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "someone/else", "--token-file", str(token_file),
                      token="")
    assert result.returncode == 7
    assert "[HUB_TOKEN_REJECTED]: the Hub refused the token for someone/else (403)" in result.stderr
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "me/from-file", "--token-file", str(token_file),
                      token="")
    assert result.returncode == 0, result.stderr


def test_a_repo_gone_a_conflicting_commit_and_no_network_each_have_their_code(tmp_path, hub, trained):
    hub.vanish = True
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "me/gone")
    assert result.returncode == 7
    assert "[HUB_REPO_NOT_FOUND]: the Hub has no repository me/gone (revision main) that this token may write to: " \
        in result.stderr
    assert "fix: check --repo OWNER/NAME and --revision, and that the token's account may write to OWNER" \
        in result.stderr
    hub.vanish, hub.conflict_next_commit = False, True
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "me/busy")
    assert result.returncode == 7
    assert "[HUB_CONFLICT]: the Hub refused the commit to me/busy: A commit has happened since. Please refresh and " \
           "try again." in result.stderr
    assert "another commit may have landed first or the branch is protected: push again, or to another --revision" \
        in result.stderr
    result = push_cli(tmp_path, None, trained.spec.run_id, "--repo", "me/offline")
    assert result.returncode == 7
    assert "[HUB_NETWORK]: the Hub at http://127.0.0.1:9 did not answer (3 attempts): ConnectError" in result.stderr
    assert "check the network and HF_ENDPOINT, then push again (files already uploaded are not sent twice)" \
        in result.stderr


class SilentServer:
    """A STAND-IN for a stuck Hub (or proxy): a loopback socket that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.socket.close()


def test_a_hub_that_accepts_and_never_answers_ends_the_push_within_the_timeout_with_a_line_while_it_waits(
        tmp_path, trained):
    """The bound is --timeout (2 s here) for each answer; a line every second says what is awaited."""
    silent = SilentServer()
    try:
        started = time.monotonic()
        env = {"HF_ENDPOINT": silent.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
               "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
        result = run_cli("push", trained.spec.run_id, "--repo", "me/stuck", "--timeout", "2", "--output",
                         str(tmp_path / "out"), env=env, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 2 + 15  # the bound, plus the CLI's start-up on a loaded machine
    assert result.returncode == 7, result.stderr
    assert "Traceback" not in result.stderr
    assert (f"waiting for the Hub at {silent.url} (create_repo): 1s so far, each answer within 2s (--timeout)"
            in result.stderr.splitlines())
    assert result.stderr.splitlines()[-2:] == [
        f"[HUB_TIMEOUT]: the Hub at {silent.url} did not answer create_repo within 2s (ReadTimeout)",
        "  fix: the Hub, or a proxy on the way, is stuck or slow: check HF_ENDPOINT and the network, or pass a "
        "larger --timeout; files already uploaded are not sent twice"]
    assert not list((tmp_path / "out").glob(f"{trained.spec.run_id}/.push-*"))


def test_pushing_what_a_run_has_not_made_or_a_bad_repo_id_is_refused_before_any_upload(tmp_path, hub, trained):
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "me/merged", "--what", "merged")
    assert result.returncode == 6
    assert f"[STATE_NOTHING_TO_PUSH]: {trained.spec.run_id} has no merged to push: " in result.stderr
    assert "make it first (`backprop export RUN --format merged`), or push another --what" in result.stderr
    result = push_cli(tmp_path, hub, trained.spec.run_id, "--repo", "no-owner")
    assert result.returncode == 2 and "[CONFIG_VALUE_INVALID]: --repo='no-owner'" in result.stderr
    assert hub.requests == []


def test_without_huggingface_hub_push_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(BackpropError) as raised:
        push(tmp_path, PushSource(folder=tmp_path, what="adapter"), PushRequest("me/x"))
    assert raised.value.render().startswith("[DEP_HUB_NOT_INSTALLED]: pushing to the Hugging Face Hub needs "
                                            "huggingface_hub, which is not importable: ")
    assert raised.value.render().endswith("  fix: pip install 'backpropagate[hub]'")


def test_trainer_push_sends_the_runs_adapter(tmp_path, hub, trained, monkeypatch):
    from backpropagate import Trainer

    for variable, value in {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN,
                            "HF_HOME": str(tmp_path / "hf-home")}.items():
        monkeypatch.setenv(variable, value)
    # huggingface_hub reads HF_HUB_DISABLE_XET when it is imported, which the whole suite does at collection.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    result = Trainer(output=str(tmp_path / "out")).push("me/api-adapter", run=trained.spec.run_id)
    adapter = trained.folder.root / "adapter" / "adapter_model.safetensors"
    assert sha256(hub.files("me/api-adapter")["adapter_model.safetensors"]) == sha256(adapter.read_bytes())
    assert {"path": "adapter_model.safetensors", "bytes": 300_000, "sha256": sha256(adapter.read_bytes())} \
        in result.files
    assert result.url == f"{hub.url}/me/api-adapter" and result.revision == "main"


def test_a_push_lands_on_the_runs_history_row_and_a_second_push_to_the_same_branch_replaces_it(tmp_path, hub,
                                                                                               trained):
    run_id, weights = trained.spec.run_id, trained.folder.root / "adapter" / "adapter_model.safetensors"
    results = []
    for revision in ("main", "main", "v2"):
        weights.write_bytes(os.urandom(300_000))  # a commit with nothing new would not be made
        results.append(push_cli(tmp_path, hub, run_id[:8], "--repo", "me/row-adapter", "--revision", revision,
                                "--json"))
    first, second, branch = results
    assert [r.returncode for r in (first, second, branch)] == [0, 0, 0], branch.stderr
    commits = [json.loads(r.stdout.splitlines()[-1])["result"]["commit"] for r in (first, second, branch)]
    row = RunHistory(tmp_path / "out").get(run_id)
    assert [(entry["repo"], entry["revision"], entry["what"], entry["commit"]) for entry in row.hub] == [
        ("me/row-adapter", "main", "adapter", commits[1]), ("me/row-adapter", "v2", "adapter", commits[2])]
    assert row.hub[0]["url"].endswith("/me/row-adapter") and row.hub[0]["files"] == 4
    shown = run_cli("show-run", run_id[:8], "--output", str(tmp_path / "out"))
    assert f"hub: repo me/row-adapter  revision v2  commit {commits[2]}" in shown.stdout


def test_sigterm_during_a_push_stops_it_like_ctrl_c_and_leaves_no_staging_folder(tmp_path, trained):
    silent = socket.create_server(("127.0.0.1", 0))  # an endpoint that accepts and never answers
    env = {**os.environ, "BACKPROPAGATE_RUNTIME": "local", "HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}",
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": TOKEN}
    host = subprocess.Popen([sys.executable, "-m", "backpropagate", "push", trained.spec.run_id[:8], "--repo",
                             "me/tiny-adapter", "--output", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        silent.settimeout(60)
        connection, _ = silent.accept()  # the push staged its files and asks the Hub
        host.send_signal(signal.SIGTERM)
        _, stderr = host.communicate(timeout=30)
    finally:
        host.kill()
        silent.close()
    assert host.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted", stderr
    assert [p.name for p in trained.folder.root.iterdir() if p.name.startswith(".push-")] == []
