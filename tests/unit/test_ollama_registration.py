"""Registering with Ollama through the real `backprop` CLI, against a STAND-IN Ollama server.

The stand-in (tests/unit/ollama_standin.py) implements the documented blob and create
endpoints strictly; it cannot run a model. A test against a real Ollama is in
test_ollama_real.py and runs when one answers at OLLAMA_HOST.
"""

import hashlib
import json
import struct
import threading
import time
from pathlib import Path

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.settings import LoraSettings, TrainingSettings
from backpropagate.contract.specs import DataSpec, TrainSpec, write_spec
from backpropagate.ollama.client import OllamaClient, ollama_url
from backpropagate.ollama.container import OLLAMA_IMAGE, container_settings
from backpropagate.ollama.gguf_meta import read_metadata

from tests.conftest import free_port, run_cli
from tests.unit.ollama_standin import OllamaStandIn
from tests.unit.test_ollama_templates import CHATML_STOPS as CHATML
from tests.unit.test_ollama_templates import tiny_chatml

CHATML_STOPS = list(CHATML)


def write_gguf(path: Path, chat_template: str | None, payload: bytes = b"\0" * 4096) -> Path:
    """A GGUF file with a tokenizer header and no tensors (plus bytes standing for tensor data)."""
    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    kvs = [string("general.architecture") + struct.pack("<I", 8) + string("llama"),
           string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(tokens)) + b"".join(map(string, tokens)),
           string("tokenizer.ggml.bos_token_id") + struct.pack("<II", 4, 1),
           string("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, 4)]
    if chat_template is not None:
        kvs.append(string("tokenizer.chat_template") + struct.pack("<I", 8) + string(chat_template))
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs) + payload)
    return path


def make_run(output: Path, run_id: str = "3f2a9c1e-0000-4000-8000-000000000001") -> Path:
    """A completed run folder with an exported GGUF and its history row, as `backprop export` leaves them."""
    folder = output / run_id
    (folder / "gguf").mkdir(parents=True)
    write_spec(TrainSpec(run_id=run_id, run_dir=str(folder), model="org/base", data=DataSpec(path="d.jsonl"),
                         training=TrainingSettings(max_seq_length=512), lora=LoraSettings()), folder / "spec.json")
    gguf = write_gguf(folder / "gguf" / "model-q4_k_m.gguf", tiny_chatml())
    RunHistory(output).append(HistoryRow(run_id=run_id, status="completed", stage="train", gguf=str(gguf)))
    return folder


def cli(server, *args, extra_env=None):
    return run_cli(*args, env={"OLLAMA_HOST": server.host, **(extra_env or {})})


@pytest.fixture
def server():
    with OllamaStandIn() as stand_in:
        yield stand_in


def test_register_a_run_uploads_its_gguf_and_creates_the_model_with_chatml_template_stops_and_num_ctx(server,
                                                                                                     tmp_path):
    folder = make_run(tmp_path)
    result = cli(server, "ollama", "register", "3f2a", "--name", "bees", "--output", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    gguf = folder / "gguf" / "model-q4_k_m.gguf"
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert server.blobs[digest] == gguf.read_bytes()
    created = server.models["bees:latest"]
    assert created["files"] == {"model-q4_k_m.gguf": digest}
    assert created["parameters"] == {"stop": CHATML_STOPS, "num_ctx": 512}
    assert created["template"].startswith("{{- if .System }}<|im_start|>system\n")
    statuses = [json.loads(line)["value"] for line in result.stdout.splitlines() if '"ollama_status"' in line]
    assert statuses[0].startswith("uploading model-q4_k_m.gguf") and statuses[-1] == "success"
    outcome = json.loads(result.stdout.splitlines()[-1])["result"]
    assert outcome["name"] == "bees" and outcome["family"] == "chatml" and outcome["run_id"] == folder.name
    assert RunHistory(tmp_path).find("3f2a").ollama[0]["digest"] == digest


def test_upload_is_skipped_when_the_server_has_the_blob(server, tmp_path):
    make_run(tmp_path)
    first = cli(server, "ollama", "register", "3f2a", "--name", "bees", "--output", str(tmp_path))
    assert first.returncode == 0, first.stderr
    server.requests.clear()
    second = cli(server, "ollama", "register", "3f2a", "--name", "bees:v2", "--output", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert not [r for r in server.requests if r[0] == "POST" and r[1].startswith("/api/blobs/")]
    assert "upload skipped" in second.stderr
    assert set(server.models) == {"bees:latest", "bees:v2"}


def test_register_ends_with_the_command_that_runs_the_model(server, tmp_path):
    make_run(tmp_path)
    result = cli(server, "ollama", "register", "3f2a", "--name", "bees", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "next: ollama run bees"


def test_system_message_goes_into_the_create_request(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    result = cli(server, "ollama", "register", str(gguf), "--name", "terse", "--system", "Answer briefly.",
                 "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert server.models["terse:latest"]["system"] == "Answer briefly."
    assert "num_ctx" not in server.models["terse:latest"]["parameters"]  # no run: no training length to go by


def test_a_body_that_does_not_match_its_digest_is_a_coded_error(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    wrong = "sha256:" + "0" * 64
    with pytest.raises(BackpropError) as raised:
        OllamaClient(server.host).push_blob(gguf, wrong)
    assert raised.value.code == "RUNTIME_OLLAMA_DIGEST_MISMATCH"
    actual = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert raised.value.message == (f"Ollama refused {gguf}: its content does not match digest {wrong} "
                                    f'(digest mismatch, expected "{wrong}", got "{actual}")')
    assert raised.value.fix == "the file changed while it was uploaded; export it again, then register it"
    assert raised.value.exit_code == 5
    assert wrong not in server.blobs


def test_an_error_streamed_by_create_is_a_coded_error_with_exit_5(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    server.stream_error = "unsupported architecture"
    result = cli(server, "ollama", "register", str(gguf), "--name", "bees", "--output", str(tmp_path))
    assert result.returncode == 5
    assert result.stderr.splitlines()[-2:] == [
        "[RUNTIME_OLLAMA_CREATE_FAILED]: Ollama could not create model bees: unsupported architecture",
        "  fix: check the name (lowercase letters, digits, - _ . and one :tag) and the --template given, then "
        "register again"]
    assert not server.models


def test_a_name_ollama_refuses_is_a_create_error(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    result = cli(server, "ollama", "register", str(gguf), "--name", "no spaces allowed", "--output", str(tmp_path))
    assert result.returncode == 5
    assert "[RUNTIME_OLLAMA_CREATE_FAILED]: Ollama could not create model no spaces allowed: invalid model name" \
        in result.stderr


def test_a_server_that_stops_answering_is_a_timeout(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    server.stall_s = 3
    result = cli(server, "ollama", "register", str(gguf), "--name", "bees", "--timeout", "0.5",
                 "--output", str(tmp_path))
    assert result.returncode == 5
    assert result.stderr.splitlines()[-2:] == [
        f"[RUNTIME_OLLAMA_TIMEOUT]: Ollama at http://{server.host} did not answer POST /api/create within 0.5s",
        "  fix: the server is busy or stuck: check it with `ollama ps`, or pass a larger --timeout"]


def test_a_server_that_accepts_and_never_answers_is_a_timeout_within_the_bound_with_a_line_while_it_waits(
        server, tmp_path):
    """The bound is --timeout (3 s here) for each answer; a line every second says what is awaited and the bound."""
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    server.never_answer = True
    started = time.monotonic()
    result = run_cli("ollama", "register", str(gguf), "--name", "bees", "--timeout", "3", "--output", str(tmp_path),
                     env={"OLLAMA_HOST": server.host, "COLUMNS": "200"}, timeout=30)
    assert time.monotonic() - started < 3 + 15  # the bound, plus the CLI's start-up on a loaded machine
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    waiting = [line for line in result.stderr.splitlines() if "waiting for Ollama" in line]
    assert waiting and waiting[0] == (f"waiting for Ollama at http://{server.host} to answer "
                                      "GET /api/version: 1s, at most 3s (--timeout)")
    assert result.stderr.splitlines()[-2:] == [
        f"[RUNTIME_OLLAMA_TIMEOUT]: Ollama at http://{server.host} did not answer GET /api/version within 3.0s",
        "  fix: the server is busy or stuck: check it with `ollama ps`, or pass a larger --timeout"]


@pytest.mark.parametrize("status, text, fix", [
    (401, "unauthorized", "  fix: Ollama itself asks for no credentials, so a proxy in front of it does: point "
                          "OLLAMA_HOST at the server itself (default http://127.0.0.1:11434), or register on the "
                          "machine it runs on"),
    (500, "something went wrong", "  fix: the server failed on its side: read its log (journalctl -u ollama, or "
                                  "`docker logs` of its container), then register again"),
])
@pytest.mark.parametrize("command", [["register", "{gguf}", "--name", "bees"], ["list"], ["rm", "bees"]])
def test_an_http_error_from_ollama_is_a_coded_error_whose_fix_fits_the_status(server, tmp_path, status, text, fix,
                                                                              command):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    server.fail_with = (status, text)
    result = cli(server, "ollama", *[part.format(gguf=gguf) for part in command], "--output", str(tmp_path))
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    request = {"rm": "DELETE /api/delete", "list": "GET /api/tags"}.get(command[0], "GET /api/version")
    assert result.stderr.splitlines()[-2:] == [
        f"[RUNTIME_OLLAMA_REFUSED]: Ollama at http://{server.host} answered {request} with HTTP {status}: {text}",
        fix]


LOOPS_10_TO_THE_10 = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_a_chat_template_that_loops_ten_billion_times_is_a_coded_error_within_the_bound(server, tmp_path):
    """Each rendering is bounded by 10^6 loop steps and 10 s (chat_template.MAX_LOOP_STEPS, MAX_RENDER_S)."""
    gguf = write_gguf(tmp_path / "m.gguf", LOOPS_10_TO_THE_10)
    started = time.monotonic()
    result = run_cli("ollama", "register", str(gguf), "--name", "bees", "--output", str(tmp_path),
                     env={"OLLAMA_HOST": server.host}, timeout=60)
    assert time.monotonic() - started < 10 + 15  # the bound, plus the CLI's start-up on a loaded machine
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        f"[INPUT_CHAT_TEMPLATE_RUNAWAY]: the chat template of {gguf} does not finish rendering: its loops ran past "
        "1,000,000 steps",
        f"  fix: fix the loops of the chat template in {gguf}, or use a model whose chat template ends in a few loop "
        "steps (`backprop ollama register` also takes your own --template FILE with --stop TOKEN)"]
    assert ("POST", "/api/create") not in server.requests


def test_dropped_connections_are_retried(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    server.drop_connections = 2
    result = cli(server, "ollama", "register", str(gguf), "--name", "bees", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "bees:latest" in server.models


def test_a_server_that_starts_late_is_reached_by_retrying(tmp_path):
    port = free_port()
    client = OllamaClient(f"127.0.0.1:{port}", retries=4, backoff_s=0.2)
    holder = {}

    def start_later():
        holder["server"] = OllamaStandIn(port).__enter__()

    timer = threading.Timer(0.4, start_later)
    timer.start()
    try:
        assert client.version() == "0.0.0-standin"  # refused at first, answered after a retry
    finally:
        timer.join()
        holder["server"].__exit__()


def test_no_server_is_a_coded_error_naming_ollama_serve_and_the_container_flag(tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    port = free_port()
    result = run_cli("ollama", "register", str(gguf), "--name", "bees", "--output", str(tmp_path),
                     env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert result.returncode == 4
    lines = result.stderr.splitlines()
    assert lines[-2].startswith(f"[DEP_OLLAMA_REGISTRATION_FAILED]: no Ollama server answers at "
                                f"http://127.0.0.1:{port} (GET /api/version: [Errno 111] Connection refused)")
    assert lines[-1] == ("  fix: start it with `ollama serve` (or set OLLAMA_HOST to where it listens), "
                         "or pass --ollama-container")


def test_export_with_ollama_and_a_format_other_than_gguf_is_refused(tmp_path):
    result = run_cli("export", "3f2a", "--format", "merged", "--ollama", "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "[CONFIG_OLLAMA_NEEDS_GGUF]: --ollama registers a GGUF with Ollama, but --format is merged",
        "  fix: add --format gguf, or register an existing GGUF with `backprop ollama register RUN --name NAME`"]


def test_an_unmatched_chat_template_is_refused_and_a_user_template_with_stops_is_used_as_given(server, tmp_path):
    # SmolVLM's template takes message contents as lists of parts only: no linear template matches it.
    smolvlm = (Path(__file__).parent / "chat_templates" / "trl" / "smolvlm.jinja").read_text()
    gguf = write_gguf(tmp_path / "m.gguf", smolvlm)
    refused = cli(server, "ollama", "register", str(gguf), "--name", "l2", "--output", str(tmp_path))
    assert refused.returncode == 3
    assert refused.stderr.splitlines()[-2:] == [
        f"[INPUT_CHAT_TEMPLATE_UNKNOWN]: no Ollama template can be derived from the chat template of {gguf}: "
        "the user message is not written as given (or not where it was)",
        "  fix: pass --template FILE (an Ollama Go template) and --stop TOKEN for each stop token"]
    mine = tmp_path / "llama2.gotmpl"
    mine.write_text("[INST] {{ .Prompt }} [/INST]")
    without_stop = cli(server, "ollama", "register", str(gguf), "--name", "l2", "--template", str(mine),
                       "--output", str(tmp_path))
    assert without_stop.returncode == 2 and "[CONFIG_VALUE_INVALID]: --stop=''" in without_stop.stderr
    accepted = cli(server, "ollama", "register", str(gguf), "--name", "l2", "--template", str(mine),
                   "--stop", "[INST]", "--stop", "</s>", "--output", str(tmp_path))
    assert accepted.returncode == 0, accepted.stderr
    assert server.models["l2:latest"]["template"] == "[INST] {{ .Prompt }} [/INST]"
    assert server.models["l2:latest"]["parameters"]["stop"] == ["[INST]", "</s>"]


def test_a_gguf_without_a_chat_template_is_refused(server, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf", None)
    result = cli(server, "ollama", "register", str(gguf), "--name", "x", "--output", str(tmp_path))
    assert result.returncode == 3
    assert result.stderr.splitlines()[-2:] == [
        f"[INPUT_CHAT_TEMPLATE_UNKNOWN]: no Ollama template can be derived from the chat template of {gguf}: "
        "it has no chat template",
        "  fix: pass --template FILE (an Ollama Go template) and --stop TOKEN for each stop token"]


def test_lora_adapter_is_created_from_the_named_base(server, tmp_path):
    folder = make_run(tmp_path)
    adapter = write_gguf(folder / "gguf" / "adapter-f16.gguf", None, payload=b"\1" * 512)
    base = tmp_path / "base-tokenizer"
    base.mkdir()
    (base / "tokenizer_config.json").write_text(json.dumps({"chat_template": tiny_chatml(), "eos_token": "</s>"}))
    write_spec(TrainSpec(run_id=folder.name, run_dir=str(folder), model=str(base), data=DataSpec(path="d.jsonl"),
                         training=TrainingSettings(), lora=LoraSettings()), folder / "spec.json")
    server.models["tiny-base:latest"] = {"files": {}}  # the base the user already has in Ollama
    result = cli(server, "ollama", "register", folder.name, "--name", "bees-lora", "--lora", "--base", "tiny-base",
                 "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    created = server.models["bees-lora:latest"]
    digest = "sha256:" + hashlib.sha256(adapter.read_bytes()).hexdigest()
    assert created["from"] == "tiny-base" and created["adapters"] == {"adapter-f16.gguf": digest}
    # the base tokenizer's end of sequence (</s>) stops too, after the end of turn its template writes
    assert "files" not in created and created["parameters"]["stop"] == ["<|im_end|>", "</s>", "<|im_start|>"]


def test_modelfile_prints_the_same_template_and_parameters(server, tmp_path):
    folder = make_run(tmp_path)
    result = run_cli("ollama", "modelfile", "3f2a", "--name", "bees", "--system", "Be brief.",
                     "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "# made by backpropagate; register with: ollama create bees -f Modelfile"
    assert lines[1] == f"FROM {folder / 'gguf' / 'model-q4_k_m.gguf'}"
    assert lines[2] == 'TEMPLATE """{{- if .System }}<|im_start|>system'
    assert lines[-4:] == ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"', "PARAMETER num_ctx 512",
                          'SYSTEM """Be brief."""']


def test_list_shows_the_models_registered_from_this_workspace_and_rm_deletes_one(server, tmp_path):
    make_run(tmp_path)
    server.models["someone-elses:latest"] = {"files": {}}
    assert cli(server, "ollama", "register", "3f2a", "--name", "bees", "--output", str(tmp_path)).returncode == 0
    listed = cli(server, "ollama", "list", "--output", str(tmp_path), "--json")
    assert [m["name"] for m in json.loads(listed.stdout)["result"]["models"]] == ["bees:latest"]
    everything = cli(server, "ollama", "list", "--all", "--output", str(tmp_path), "--json")
    assert len(json.loads(everything.stdout)["result"]["models"]) == 2
    removed = cli(server, "ollama", "rm", "bees", "--output", str(tmp_path))
    assert removed.returncode == 0, removed.stderr
    assert set(server.models) == {"someone-elses:latest"}
    assert RunHistory(tmp_path).find("3f2a").ollama == []
    again = cli(server, "ollama", "rm", "bees", "--output", str(tmp_path))
    assert again.returncode == 3
    assert again.stderr.splitlines()[-2:] == [
        f"[INPUT_OLLAMA_MODEL_NOT_FOUND]: Ollama at http://{server.host} has no model bees",
        "  fix: see the models this tool registered with `backprop ollama list`"]


def test_gguf_metadata_is_read_without_gguf_py(tmp_path):
    metadata = read_metadata(write_gguf(tmp_path / "m.gguf", "T"))
    assert metadata["tokenizer.chat_template"] == "T" and metadata["tokenizer.ggml.eos_token_id"] == 4
    (tmp_path / "bad.gguf").write_bytes(b"GGML....")
    with pytest.raises(BackpropError) as raised:
        read_metadata(tmp_path / "bad.gguf")
    assert raised.value.render() == (
        f"[INPUT_GGUF_INVALID]: {tmp_path / 'bad.gguf'} is not a readable GGUF file: it does not start with GGUF\n"
        "  fix: export it again with `backprop export RUN --format gguf`")
    assert raised.value.exit_code == 3


@pytest.mark.parametrize("value,url", [("", "http://127.0.0.1:11434"), ("example.com", "http://example.com:11434"),
                                       ("0.0.0.0:9999", "http://127.0.0.1:9999"),
                                       ("https://ollama.example.com", "https://ollama.example.com:443"),
                                       ("http://box:8080/proxy/", "http://box:8080/proxy")])
def test_ollama_host_is_read_as_the_ollama_cli_reads_it(value, url):
    assert ollama_url(value) == url


def test_the_ollama_container_is_the_pinned_image_with_its_named_volume_on_the_hosts_port():
    """Not run here (no container registry to pull from): the settings it would start the container with."""
    settings = container_settings("http://127.0.0.1:11500")
    assert settings["image"] == OLLAMA_IMAGE and ":" in OLLAMA_IMAGE and not OLLAMA_IMAGE.endswith(":latest")
    assert settings["volumes"] == {"ollama": {"bind": "/root/.ollama", "mode": "rw"}}
    assert settings["ports"] == {"11434/tcp": ("127.0.0.1", 11500)}
    assert settings["detach"] is True
