"""Qwen3 and Llama 3, with their real tokenizers and templates, through training, GGUF export, verification and chat."""

import json
import sys

import pytest
from backpropagate.contract.errors import BackpropError
from transformers import AutoTokenizer

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"
END_OF_TURN = {"qwen3": "<|im_end|>", "llama3": "<|eot_id|>"}


@pytest.fixture(scope="module", params=list(END_OF_TURN))
def trained(request, family_model, tmp_path_factory):
    model = family_model(request.param)
    output = tmp_path_factory.mktemp("runs")
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--device", "cpu", "--steps", "30",
                     "--batch-size", "2", "--gradient-accumulation", "1", "--learning-rate", "1e-3",
                     "--checkpoint-every", "0", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    return request.param, model, output, json.loads(result.stdout.splitlines()[-1])["result"]


def test_thirty_steps_on_the_cpu_lower_the_loss(trained):
    _, _, _, result = trained
    losses = result["losses"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


@pytest.mark.parametrize("quantization", ["q8_0", "q4_k_m"])
def test_the_export_verifies_and_keeps_the_family_tokenizer(trained, quantization):
    family, model, output, result = trained
    exported = run_cli("export", result["run_id"], "--format", "gguf", "--quantization", quantization,
                       "--output", str(output), "--json")
    assert exported.returncode == 0, exported.stderr
    gguf = output / result["run_id"] / "gguf" / f"model-{quantization}.gguf"
    check = json.loads(gguf.with_name("verify.json").read_text())[gguf.name]
    assert check["passed"], check["problems"]
    # The run's rows and every hard string, alone and inside a conversation: the same ids on both sides.
    assert check["tokenizer_mismatches"] == 0 and check["tokenizer_cases"] >= 25
    tokenizer = AutoTokenizer.from_pretrained(model)
    metadata = gguf_metadata(gguf)
    assert metadata["tokenizer.ggml.pre"] == {"qwen3": "qwen2", "llama3": "llama-bpe"}[family]
    assert int(metadata["tokenizer.ggml.eos_token_id"]) == tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    assert metadata["tokenizer.chat_template"] == tokenizer.chat_template


def gguf_metadata(path) -> dict:
    """The GGUF's key-value metadata as llama.cpp reads it (vocabulary only: quick even at 150k tokens)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return dict(llm.metadata)
    finally:
        llm.close()


def test_chat_answers_and_ends_its_turn(trained):
    family, _, output, result = trained
    for gguf in ("model-q8_0.gguf", "model-q4_k_m.gguf"):
        path = output / result["run_id"] / "gguf" / gguf
        if not path.exists():
            pytest.skip("runs after the export tests")
        answer = run_cli("chat", str(path), "--prompt", "What do bees make?", "--max-tokens", "48")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip()
        # Cut at --max-tokens is reported on stderr; silence means the model emitted its end-of-turn token.
        assert "did not end its turn" not in answer.stderr, (family, answer.stdout)


def test_a_gguf_whose_pre_tokenizer_is_wrong_fails_verification_with_its_code(trained, tmp_path):
    """The classic broken conversion: the right vocabulary split by the wrong pre-tokenizer rules."""
    from backpropagate_stages.gguf import llama_tools, verify
    from backpropagate_stages.gguf.run import _check

    family, model, output, result = trained
    right = output / result["run_id"] / "gguf" / "model-q8_0.gguf"  # verified by its export
    if not right.exists():
        pytest.skip("runs after the export tests")
    sys.path.insert(0, str(llama_tools.tools_dir() / "gguf-py"))
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(right)
    wrong = tmp_path / "wrong.gguf"
    writer = gguf.GGUFWriter(wrong, arch=reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())
    copy_with_new_metadata(reader, writer, {gguf.Keys.Tokenizer.PRE: MetadataDetails(gguf.GGUFValueType.STRING,
                                                                                        "gpt-2")}, [])
    cases = verify.verification_cases(AutoTokenizer.from_pretrained(model), [])
    checked = verify.compare(wrong, output / result["run_id"] / "merged", cases, "q8_0")
    assert checked["tokenizer_mismatches"] > 0
    with pytest.raises(BackpropError) as raised:
        _check(checked, "q8_0", lambda event: None)
    assert raised.value.code == "RUNTIME_GGUF_VERIFY_FAILED"
    assert "tokenizes" in raised.value.message
