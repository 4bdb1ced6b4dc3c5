"""Hostile settings that only the model can judge, through the real CLI on the tiny model."""

import json
import re

from tests.conftest import run_cli
from tests.unit.test_hostile_inputs import JSONL


def test_lora_targets_the_model_does_not_have_are_refused_with_its_module_names(tiny_model, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    result = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--output", str(tmp_path / "runs"),
                     "--device", "cpu", "--steps", "1", "--lora-targets", "q_proj,qkv_proj", "--json")
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout.splitlines()[-1])["error"]  # refused before any stage ran: the --json failure
    assert error["code"] == "CONFIG_VALUE_INVALID"
    assert error["message"] == (f"--lora-targets='q_proj,qkv_proj' is not valid: {tiny_model} has no linear layer "
                                "named qkv_proj")
    assert error["fix"] == "use all-linear or some of down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"
    assert not list((tmp_path / "runs").rglob("adapter_config.json"))  # nothing trained on a name that means nothing


def test_prompts_longer_than_max_seq_length_name_the_users_line_and_the_length_that_fits(tiny_model, tmp_path):
    data = tmp_path / "long.jsonl"
    prompt = " ".join(f"word{i}" for i in range(60))
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                     {"role": "assistant", "content": "short"}]}) + "\n"
                            for _ in range(2)))
    flags = ("--model", str(tiny_model), "--output", str(tmp_path / "runs"), "--device", "cpu", "--steps", "1")
    result = run_cli("train", "--data", str(data), *flags, "--max-seq-length", "32")
    assert result.returncode == 3, result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    match = re.fullmatch(rf"\[INPUT_PROMPT_TOO_LONG\]: {re.escape(str(data))}:1: no reply fits in --max-seq-length "
                         r"32; this example's first reply token is token (\d+)", message)
    assert match, message
    needed = int(match.group(1))
    assert fix == f"  fix: raise --max-seq-length to at least {needed}, or shorten the prompts"
    fits = run_cli("train", "--data", str(data), *flags, "--max-seq-length", str(needed))
    assert fits.returncode == 0, fits.stderr  # the length named is enough


def test_a_chat_template_that_loops_ten_billion_times_stops_train_with_a_coded_error_within_the_bound(tiny_model,
                                                                                                   tmp_path):
    """The stage renders each conversation bounded (10^6 loop steps, 10 s) before transformers renders it."""
    import shutil
    import time

    model = tmp_path / "looping-model"
    shutil.copytree(tiny_model, model)
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    for template in model.glob("chat_template.jinja"):
        template.write_text(loop)
    config = json.loads((model / "tokenizer_config.json").read_text())
    if "chat_template" in config or not (model / "chat_template.jinja").exists():
        (model / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": loop}))
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    started = time.monotonic()
    result = run_cli("train", "--data", str(data), "--model", str(model), "--output", str(tmp_path / "runs"),
                     "--device", "cpu", "--steps", "1", timeout=120)
    assert time.monotonic() - started < 60  # 10 s of rendering, plus loading the tiny model
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    message, fix = result.stderr.strip().splitlines()[-2:]
    assert message == (f"[INPUT_CHAT_TEMPLATE_RUNAWAY]: the chat template of {model} does not finish rendering: its "
                       "loops ran past 1,000,000 steps")
    assert fix.startswith(f"  fix: fix the loops of the chat template in {model}")
