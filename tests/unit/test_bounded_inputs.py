"""Every file a user names is read bounded: regular files only, JSON with depth and number limits.

Each case runs the real CLI with a timeout (the bound stated in docs/guides/data.md): a pipe or a device is
refused at once with a coded error and a fix that fits, and JSON that would crash Python's decoder is one
bad row that --skip-invalid skips.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from backpropagate.contract.bounded_json import MAX_DEPTH
from tests.conftest import ROOT, run_cli

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
DEEP = '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"  # 100,000 levels: Python's json raises RecursionError
HUGE_INT = '{"x": ' + "9" * 5000 + "}"  # over Python's 4300-digit int() limit: a bare ValueError
TOO_COMPLEX = {DEEP: f"nested 100,001 levels deep, over the limit of {MAX_DEPTH}",
               HUGE_INT: "an integer with 5,000 digits, over the limit of 4,300"}
BOUND_S = 20  # nothing here reads more than a few bytes; a hang would pass this


def coded(result, code, exit_code):
    """The two last lines of stderr (message, fix) of a coded failure with no traceback."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    assert message.startswith(f"[{code}]: "), message
    return message, fix


def tiny_model_folder(tmp_path):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    return model


def train(tmp_path, *args):
    """`backprop train` on a model folder that passes the host's checks: it stops at the first bad input."""
    data = tmp_path / "good.jsonl"
    if not data.exists():
        data.write_text(json.dumps(ROW) + "\n")
    flags = dict(zip(args[::2], args[1::2]))
    flags.setdefault("--data", str(data))
    argv = [part for pair in flags.items() for part in pair]
    return run_cli("train", *argv, "--model", str(tiny_model_folder(tmp_path)), "--device", "cpu",
                   "--output", str(tmp_path / "out"), timeout=BOUND_S)


@pytest.mark.parametrize("bad", [DEEP, HUGE_INT], ids=["nested-100000-deep", "5000-digit-integer"])
def test_json_past_the_decoder_limits_is_a_bad_row_named_with_its_line_that_skip_invalid_skips(tmp_path, bad):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + bad + "\n" + json.dumps(ROW) + "\n")
    message, fix = coded(run_cli("validate", "--data", str(path), timeout=BOUND_S), "INPUT_DATASET_INVALID", 3)
    assert message == f"[INPUT_DATASET_INVALID]: {path}:2: too complex to read: {TOO_COMPLEX[bad]} (1 invalid rows in all)"
    assert fix == "  fix: fix that row, or pass --skip-invalid to train on the valid rows only"
    skipped = run_cli("validate", "--data", str(path), "--skip-invalid", "--json", timeout=BOUND_S)
    assert skipped.returncode == 0, skipped.stderr
    summary = json.loads(skipped.stdout.splitlines()[-1])["result"]
    assert (summary["rows"], summary["valid"], summary["invalid"]) == (3, 2, 1)


def test_a_json_array_with_a_too_deep_element_names_its_line_and_skips_only_that_element(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("[\n" + json.dumps(ROW) + ",\n" + DEEP + ",\n" + json.dumps(ROW) + "\n]\n")
    message, _ = coded(run_cli("validate", "--data", str(path), timeout=BOUND_S), "INPUT_DATASET_INVALID", 3)
    assert message.startswith(f"[INPUT_DATASET_INVALID]: {path}:3: too complex to read: nested 100,001 levels")
    skipped = run_cli("validate", "--data", str(path), "--skip-invalid", "--json", timeout=BOUND_S)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout.splitlines()[-1])["result"]["valid"] == 2


@pytest.mark.parametrize("bad", [DEEP, HUGE_INT], ids=["nested-100000-deep", "5000-digit-integer"])
def test_eval_prompts_past_the_decoder_limits_stop_train_with_the_line(tmp_path, bad):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ok"}\n' + bad + "\n")
    message, _ = coded(train(tmp_path, "--eval-prompts", str(prompts)), "INPUT_EVAL_PROMPTS_INVALID", 3)
    assert message == f"[INPUT_EVAL_PROMPTS_INVALID]: eval prompts {prompts}:2: too complex to read: {TOO_COMPLEX[bad]}"


def test_eval_data_past_the_decoder_limits_stops_train_with_the_line(tmp_path):
    eval_data = tmp_path / "eval.jsonl"
    eval_data.write_text(json.dumps(ROW) + "\n" + DEEP + "\n")
    message, _ = coded(train(tmp_path, "--eval-data", str(eval_data)), "INPUT_DATASET_INVALID", 3)
    assert message.startswith(f"[INPUT_DATASET_INVALID]: {eval_data}:2: too complex to read: nested 100,001")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "data.jsonl"
    os.mkfifo(path)  # nobody ever writes to it: reading it would block forever
    return path


@pytest.mark.parametrize("option", ["--data", "--eval-data"])
def test_a_fifo_or_dev_zero_as_a_dataset_is_refused_at_once_with_write_it_to_a_file_first(tmp_path, fifo, option):
    example = {"--data": "data.jsonl", "--eval-data": "eval.jsonl"}[option]
    for path, what in ((fifo, "a pipe (a FIFO, <(cmd) or a piped /dev/stdin)"), ("/dev/zero", "a device")):
        message, fix = coded(train(tmp_path, option, str(path)), "INPUT_DATASET_UNREADABLE", 3)
        assert message == (f"[INPUT_DATASET_UNREADABLE]: dataset {path} cannot be read: it is {what}, which is read "
                           "only once or never ends")
        assert fix == f"  fix: write it to a file first (for example: cmd > {example}), then pass {example} to {option}"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_validate_refuses_a_fifo_and_dev_zero_at_once(fifo):
    for path in (fifo, "/dev/zero"):
        coded(run_cli("validate", "--data", str(path), timeout=BOUND_S), "INPUT_DATASET_UNREADABLE", 3)


def test_a_fifo_as_eval_prompts_is_refused_at_once(tmp_path, fifo):
    message, fix = coded(train(tmp_path, "--eval-prompts", str(fifo)), "INPUT_EVAL_PROMPTS_UNREADABLE", 3)
    assert message.startswith(f"[INPUT_EVAL_PROMPTS_UNREADABLE]: eval prompts {fifo} cannot be read: it is a pipe")
    assert fix == "  fix: write it to a file first (for example: cmd > prompts.jsonl), then pass prompts.jsonl to --eval-prompts"


@pytest.mark.parametrize("command", ["validate", "train"])
def test_piped_stdin_and_process_substitution_are_refused_not_a_seek_traceback(tmp_path, command):
    """`--data /dev/stdin` with a pipe on stdin, and bash's `<(cmd)` (a /dev/fd/N pipe): both pipes."""
    model = tiny_model_folder(tmp_path)
    more = ["--model", str(model), "--device", "cpu", "--output", str(tmp_path / "out")] if command == "train" else []
    script = (f'{sys.executable} -m backpropagate {command} --data /dev/stdin {" ".join(more)} < <(echo \'{json.dumps(ROW)}\'); '
              f'echo "rc=$?" >&2; {sys.executable} -m backpropagate {command} --data <(echo \'{json.dumps(ROW)}\') '
              f'{" ".join(more)}; echo "rc=$?" >&2')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")} | {"BACKPROPAGATE_RUNTIME": "local"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=2 * BOUND_S, env=env,
                            cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("rc=")] == ["rc=3", "rc=3"], result.stderr
    refusals = [line for line in lines if line.startswith("[INPUT_DATASET_UNREADABLE]")]
    assert len(refusals) == 2 and all("it is a pipe" in line for line in refusals), result.stderr
    if command == "validate":  # a file redirected to stdin is no pipe: it is read as the file it is
        data = tmp_path / "data.jsonl"
        data.write_text(json.dumps(ROW) + "\n")
        with open(data) as stdin:
            redirected = subprocess.run([sys.executable, "-m", "backpropagate", "validate", "--data", "/dev/stdin"],
                                        stdin=stdin, capture_output=True, text=True, timeout=BOUND_S, env=env)
        assert redirected.returncode == 0, redirected.stderr


def test_a_symlink_loop_as_data_in_train_is_the_same_coded_error_as_in_validate(tmp_path):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    in_validate = coded(run_cli("validate", "--data", str(loop), timeout=BOUND_S), "INPUT_DATASET_UNREADABLE", 3)
    in_train = coded(train(tmp_path, "--data", str(loop)), "INPUT_DATASET_UNREADABLE", 3)
    assert in_train == in_validate
    assert in_train[0].endswith("cannot be read: it is a symbolic link that leads back to itself")


def test_a_symlink_loop_as_eval_prompts_is_named_as_one(tmp_path):
    loop = tmp_path / "prompts.jsonl"
    loop.symlink_to(loop)
    message, _ = coded(train(tmp_path, "--eval-prompts", str(loop)), "INPUT_EVAL_PROMPTS_UNREADABLE", 3)
    assert message.endswith("cannot be read: it is a symbolic link that leads back to itself")


def test_an_upload_past_the_decoder_limits_lists_that_row_and_keeps_nothing(tmp_path):
    pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
    from tests.unit.test_ui_security import client_for, logged_in

    client = client_for(tmp_path / "ui")
    token = logged_in(client)
    rows = (json.dumps(ROW) + "\n" + DEEP + "\n" + HUGE_INT + "\n").encode()
    response = client.post(f"/datasets?csrf={token}", files={"file": ("hostile.jsonl", rows)})
    assert response.status_code == 400
    problems = [p.replace("&#39;", "'") for p in re.findall(r"<li>(.*?)</li>", response.text)]
    assert problems == [f"hostile.jsonl:2: too complex to read: {TOO_COMPLEX[DEEP]}",
                        f"hostile.jsonl:3: too complex to read: {TOO_COMPLEX[HUGE_INT]}"]
    assert list((tmp_path / "ui" / "datasets").iterdir()) == []


def ui(tmp_path, *args, env=None):
    return run_cli("ui", "--share", *args, env={"HOME": str(tmp_path), **(env or {})}, timeout=BOUND_S)


def test_an_auth_file_that_is_a_device_or_a_pipe_is_refused_at_once(tmp_path, fifo):
    for path, what in ((fifo, "a pipe"), ("/dev/zero", "a device")):
        message, fix = coded(ui(tmp_path, "--auth-file", str(path)), "INPUT_AUTH_FILE_INVALID", 3)
        assert message.startswith(f"[INPUT_AUTH_FILE_INVALID]: auth file {path} is not usable: it is {what}")
        assert fix == "  fix: write it to a file first (for example: cmd > auth.txt), then pass auth.txt to --auth-file"


def test_a_latin1_auth_file_is_named_as_not_utf8(tmp_path):
    auth = tmp_path / "auth"
    auth.write_bytes("zoë:s3cret-pass\n".encode("latin-1"))
    message, fix = coded(ui(tmp_path, "--auth-file", str(auth)), "INPUT_AUTH_FILE_INVALID", 3)
    assert message == f"[INPUT_AUTH_FILE_INVALID]: auth file {auth} is not usable: it is not UTF-8 (byte 0xeb at offset 2)"
    assert fix.startswith(f"  fix: save {auth} as UTF-8")


def test_an_auth_file_that_is_a_folder_is_told_so_not_to_write_a_line_into_it(tmp_path):
    message, fix = coded(ui(tmp_path, "--auth-file", str(tmp_path)), "INPUT_AUTH_FILE_INVALID", 3)
    assert message == f"[INPUT_AUTH_FILE_INVALID]: auth file {tmp_path} is not usable: it is a directory"
    assert fix == "  fix: pass the auth file inside it to --auth-file"


def test_a_ui_folder_that_is_a_file_is_a_coded_error(tmp_path):
    folder = tmp_path / "ui-outputs"
    folder.write_text("not a folder")
    result = run_cli("ui", env={"HOME": str(tmp_path), "BACKPROPAGATE_UI__OUTPUT_DIR": str(folder)}, timeout=BOUND_S)
    message, fix = coded(result, "CONFIG_UI_FOLDER_UNUSABLE", 2)
    assert message == f"[CONFIG_UI_FOLDER_UNUSABLE]: the UI's folder {folder} cannot be used: {folder} is a file, not a folder"
    assert fix == (f"  fix: set BACKPROPAGATE_UI__OUTPUT_DIR to a folder (one that does not exist yet is created), or "
                   f"move {folder} out of the way")


def test_a_fifo_as_a_gguf_a_template_or_a_token_file_is_refused_at_once(tmp_path):
    from tests.unit.test_ollama_registration import write_gguf
    from tests.unit.test_ollama_templates import tiny_chatml

    pipe = tmp_path / "pipe.gguf"
    os.mkfifo(pipe)
    message, fix = coded(run_cli("ollama", "register", str(pipe), "--name", "bees", "--output", str(tmp_path),
                                 timeout=BOUND_S), "INPUT_FILE_UNREADABLE", 3)
    assert message.startswith(f"[INPUT_FILE_UNREADABLE]: TARGET {pipe} cannot be read: it is a pipe")
    assert fix == "  fix: write it to a file first (for example: cmd > model.gguf), then pass model.gguf to TARGET"
    gguf = write_gguf(tmp_path / "m.gguf", tiny_chatml())
    message, fix = coded(run_cli("ollama", "register", str(gguf), "--name", "bees", "--template", str(pipe), "--stop",
                                 "<|im_end|>", "--output", str(tmp_path), timeout=BOUND_S), "INPUT_FILE_UNREADABLE", 3)
    assert message.startswith(f"[INPUT_FILE_UNREADABLE]: --template {pipe} cannot be read: it is a pipe")
    assert fix == "  fix: write it to a file first (for example: cmd > template.txt), then pass template.txt to --template"
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    result = run_cli("push", str(folder), "--repo", "me/x", "--token-file", "/dev/zero", "--output", str(tmp_path),
                     env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_XET": "1"}, timeout=BOUND_S)
    message, _ = coded(result, "INPUT_FILE_UNREADABLE", 3)
    assert message == ("[INPUT_FILE_UNREADABLE]: --token-file /dev/zero cannot be read: it is a device, which is read "
                       "only once or never ends")
