"""GGUF export through the pinned llama.cpp: convert, quantize, verify, chat; and defects it catches."""

import json
import logging
import shutil
import subprocess
import sys

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory

from tests.conftest import ROOT, run_cli
from tests.local.test_multi_run import campaign  # noqa: F401  (the fixture: a 3-run campaign on the tiny model)
from tests.local.test_resilience import chat_data  # noqa: F401  (the fixture: 40 short conversations)

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs")
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--device", "cpu", "--steps",
                     "5", "--checkpoint-every", "0", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    return output, json.loads(result.stdout.splitlines()[-1])["result"]["run_id"]


def gguf_field(path, key):
    from backpropagate_stages.gguf.llama_tools import read_field

    return read_field(path, key)


def test_train_export_q4_k_m_verify_and_chat_end_to_end(tiny_model, trained):
    output, run_id = trained
    result = run_cli("export", run_id, "--format", "gguf", "--quantization", "q4_k_m", "--output", str(output),
                     "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.splitlines()[-1])["result"]
    gguf = output / run_id / "gguf" / "model-q4_k_m.gguf"
    assert outputs["gguf"] == str(gguf)
    steps = [parse_line(line).event.value for line in result.stdout.splitlines()
             if '"export_step"' in line]
    assert steps == ["convert (f16)", "quantize (q4_k_m)", "verify"]

    check = json.loads((output / run_id / "gguf" / "verify.json").read_text())["model-q4_k_m.gguf"]
    from backpropagate_stages.gguf.verify import THRESHOLDS

    assert check["passed"] and check["tokenizer_mismatches"] == 0
    assert check["top1_agreement"] >= THRESHOLDS["q4_k_m"][0]
    from transformers import AutoTokenizer

    assert gguf_field(gguf, "tokenizer.chat_template") == AutoTokenizer.from_pretrained(tiny_model).chat_template
    assert gguf_field(gguf, "general.file_type") == 15  # MOSTLY_Q4_K_M
    manifest = json.loads((output / run_id / "manifest.json").read_text())
    assert {a["kind"] for a in manifest["artifacts"]} == {"adapter", "merged", "gguf"}
    assert next(a for a in manifest["artifacts"] if a["kind"] == "gguf")["verify"]["passed"] is True
    assert RunHistory(output).find(run_id).gguf == str(gguf)

    answer = run_cli("chat", run_id, "--prompt", "What do bees make?", "--max-tokens", "16",
                     "--output", str(output))
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip()
    streamed = run_cli("chat", run_id, "--prompt", "What do bees make?", "--max-tokens", "16",
                       "--output", str(output), "--json")
    assert streamed.returncode == 0, streamed.stderr
    *tokens, last = [json.loads(line) for line in streamed.stdout.splitlines()]
    result = last["result"]
    assert len(tokens) > 1 and "".join(t["token"] for t in tokens).strip() == result["answer"] == answer.stdout.strip()
    assert result["finish_reason"] in ("stop", "length") and result["max_tokens"] == 16

    interactive = subprocess.run([sys.executable, "-m", "backpropagate", "chat", run_id, "--max-tokens", "8",
                                  "--output", str(output)], input="Hello\nAnd again?\n\n", capture_output=True,
                                 text=True)
    assert interactive.returncode == 0, interactive.stderr
    assert interactive.stdout.count("model> ") == 2


def test_a_gguf_of_another_model_fails_verification(tiny_model, trained, tmp_path):
    from backpropagate_stages.gguf import llama_tools, verify

    other = tmp_path / "other"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama", "--out",
                    str(other), "--seed", "1"], check=True, capture_output=True)
    impostor = tmp_path / "other-f16.gguf"
    llama_tools.convert(other, impostor, "f16", logging.getLogger("test"))
    cases = [[verify.Segment(text, special=False)] for text in verify.FALLBACK_TEXTS * 4]
    result = verify.compare(impostor, tiny_model, cases, "f16")
    assert not result["passed"]
    assert any("top-1 agreement" in problem for problem in result["problems"])
    from backpropagate_stages.gguf.run import check_result

    with pytest.raises(BackpropError) as caught:  # another model's vocabulary too: the tokenizer's fix
        check_result(result, "f16", lambda event: None)
    assert caught.value.code == "RUNTIME_GGUF_TOKENIZER_MISMATCH"
    # Its predictions alone (these measured figures, the vocabulary's failures set aside) are what a larger
    # type can mend, so that fix says so.
    predictions = {**result, "tokenizer_mismatches": 0,
                   "problems": [p for p in result["problems"] if "top-1" in p or "perplexity" in p]}
    with pytest.raises(BackpropError) as caught:
        check_result(predictions, "q4_k_m", lambda event: None)
    error = caught.value
    assert (error.code, error.exit_code) == ("RUNTIME_GGUF_VERIFY_FAILED", 5)
    assert error.message.startswith("the q4_k_m GGUF disagrees with the merged model: top-1 agreement ")
    assert error.fix == "try a larger type (q5_0, q5_k_m, q6_k, q8_0, f16), or pass --no-verify to keep it anyway"
    # The fix names only types larger than the one that failed, or says that none is.
    fixes = {}
    for quantization in ("q8_0", "f16"):
        with pytest.raises(BackpropError) as caught:
            check_result(predictions, quantization, lambda event: None)
        fixes[quantization] = caught.value.fix
    assert fixes["q8_0"] == "try a larger type (f16), or pass --no-verify to keep it anyway"
    assert fixes["f16"].startswith("no type is larger than f16 (f16 and bf16 are the same size)")


def test_a_campaigns_gguf_verifies_on_rows_of_every_run(campaign):  # noqa: F811
    output, row, _ = campaign
    result = run_cli("export", row.run_id, "--format", "gguf", "--quantization", "f16", "--output", str(output),
                     "--json")
    assert result.returncode == 0, result.stderr
    spec = json.loads((output / row.run_id / "gguf.spec.json").read_text())
    assert spec["data"] == str(output / row.run_id / "data")
    check = json.loads((output / row.run_id / "gguf" / "verify.json").read_text())["model-f16.gguf"]
    assert check["passed"] and check["sequences"] == 30  # 10 of each run's 12 rows, not the two built-in texts


def test_a_corrupted_tokenizer_fails_with_the_tokenizer_fix_and_leaves_no_gguf(trained, tmp_path):
    output, run_id = trained
    run_dir = output / run_id
    merged = tmp_path / "merged"
    assert run_cli("export", run_id, "--format", "merged", "--output", str(output)).returncode == 0
    subprocess.run(["cp", "-r", str(run_dir / "merged"), str(merged)], check=True)
    tokenizer = json.loads((merged / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    pieces = [k for k in vocab if len(k) > 2 and not k.startswith("<")][:2]
    vocab[pieces[0]], vocab[pieces[1]] = vocab[pieces[1]], vocab[pieces[0]]
    (merged / "tokenizer.json").write_text(json.dumps(tokenizer))
    spec = tmp_path / "gguf.spec.json"
    spec.write_text(json.dumps({"run_id": "planted", "run_dir": str(tmp_path / "run"), "merged": str(merged),
                                "quantization": "q8_0", "data": str(QUICKSTART)}))
    done = subprocess.run([sys.executable, "-m", "backpropagate_stages.gguf", "--spec", str(spec)],
                          capture_output=True, text=True)
    assert done.returncode == 5, done.stdout
    error = [parse_line(line).event for line in done.stdout.splitlines()][-2]
    assert error.code == "RUNTIME_GGUF_TOKENIZER_MISMATCH"
    assert error.message.startswith("the q8_0 GGUF does not tokenize as the merged model does: ")
    assert "for llama.cpp" in error.message
    assert error.fix == ("no other type will help: llama.cpp's converter read the tokenizer differently; check that "
                         "token in the merged model's tokenizer.json, or pass --no-verify to keep the GGUF anyway")
    assert not (tmp_path / "run" / "gguf").exists() and not (tmp_path / "run" / "gguf.partial").exists()


def test_chat_refuses_a_gguf_without_a_chat_template(tiny_model, tmp_path):
    from backpropagate_stages.gguf import llama_tools

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    gguf = tmp_path / "bare-f16.gguf"
    llama_tools.convert(bare, gguf, "f16", logging.getLogger("test"))
    assert gguf_field(gguf, "tokenizer.chat_template") is None  # the converter had no template to copy
    result = run_cli("chat", str(gguf), "--prompt", "What do bees make?", "--max-tokens", "4")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"[INPUT_GGUF_NO_TEMPLATE]: {gguf} carries no chat template, so its prompts would be guessed",
        "  fix: export it again with `backprop export RUN --format gguf` from a model whose tokenizer has one",
    ]
    assert result.stdout == ""


def test_an_unknown_quantization_lists_the_valid_ones(trained):
    output, run_id = trained
    result = run_cli("export", run_id, "--format", "gguf", "--quantization", "q3_x", "--output", str(output))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "[CONFIG_VALUE_INVALID]: --quantization='q3_x' is not valid: not a GGUF type this export makes",
        "  fix: use one of f16, bf16, q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0",
    ]


def test_an_architecture_the_converter_does_not_know_is_gguf_export_failed(trained, tmp_path):
    output, run_id = trained
    assert run_cli("export", run_id, "--format", "merged", "--output", str(output)).returncode == 0
    merged = tmp_path / "merged"
    subprocess.run(["cp", "-r", str(output / run_id / "merged"), str(merged)], check=True)
    config = json.loads((merged / "config.json").read_text())
    config["architectures"] = ["MadeUpForCausalLM"]
    (merged / "config.json").write_text(json.dumps(config))
    spec = tmp_path / "gguf.spec.json"
    spec.write_text(json.dumps({"run_id": "arch", "run_dir": str(tmp_path / "run"), "merged": str(merged),
                                "quantization": "q4_k_m"}))
    done = subprocess.run([sys.executable, "-m", "backpropagate_stages.gguf", "--spec", str(spec)],
                          capture_output=True, text=True)
    assert done.returncode == 5
    error = [parse_line(line).event for line in done.stdout.splitlines()][-2]
    assert error.code == "RUNTIME_GGUF_EXPORT_FAILED"
    assert error.message.startswith(f"llama.cpp could not convert {merged}: ")
    assert "MadeUpForCausalLM" in error.message
    assert error.fix == "check that the architecture is one llama.cpp's convert_hf_to_gguf.py supports; see log.txt"
    assert not (tmp_path / "run" / "gguf").exists() and not (tmp_path / "run" / "gguf.partial").exists()


def test_the_python_api_exports_a_verified_gguf(tiny_model, tmp_path):
    from backpropagate import Trainer

    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    trainer.train(QUICKSTART, steps=3)
    exported = trainer.export("gguf", quantization="q8_0")
    assert exported.path == tmp_path / trainer.last_result.run_id / "gguf" / "model-q8_0.gguf"
    assert exported.outputs["verify"]["passed"]


def test_lora_gguf_exports_the_adapter_alone_and_llama_cpp_applies_it_like_peft(trained):
    output, run_id = trained
    result = run_cli("export", run_id, "--format", "lora-gguf", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.splitlines()[-1])["result"]
    adapter = output / run_id / "gguf" / "adapter-f16.gguf"
    assert outputs["gguf"] == str(adapter) and adapter.exists()
    assert gguf_field(adapter, "general.type") == "adapter"
    checks = json.loads((output / run_id / "gguf" / "verify.json").read_text())
    assert checks["adapter-f16.gguf"]["passed"] and checks["adapter-f16.gguf"]["top1_agreement"] >= 0.98
    assert not list((output / run_id / "gguf").glob("*.verify.gguf"))  # the scratch base is not kept


@pytest.mark.parametrize("quantization", ["q4_k_m", "q8_0"])
def test_a_qwen2_export_gets_the_space_prefix_flag_and_tokenizes_like_transformers(tmp_path, quantization):
    """The converter writes no add_space_prefix for Qwen2; llama.cpp would then add a leading space."""
    model = tmp_path / "qwen2"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "qwen2", "--out",
                    str(model)], check=True, capture_output=True)
    trained = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--device", "cpu", "--steps", "2",
                      "--checkpoint-every", "0", "--output", str(tmp_path / "runs"), "--json")
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    result = run_cli("export", run_id, "--format", "gguf", "--quantization", quantization, "--output",
                     str(tmp_path / "runs"), "--json")
    assert result.returncode == 0, result.stderr
    gguf = tmp_path / "runs" / run_id / "gguf" / f"model-{quantization}.gguf"
    assert gguf_field(gguf, "tokenizer.ggml.add_space_prefix") is False
    check = json.loads(gguf.with_name("verify.json").read_text())[gguf.name]
    assert check["tokenizer_mismatches"] == 0 and check["passed"]
