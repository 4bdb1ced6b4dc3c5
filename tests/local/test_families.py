"""Qwen3, Llama 3, Gemma 3 and Llama 2, with their real tokenizers and templates, through training, GGUF export,
verification and chat."""

import json
import shutil

import pytest
from backpropagate.contract.errors import BackpropError
from transformers import AutoTokenizer

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"
# The quickstart's first 16 examples: two packed rows, the whole data in every step, so the loss falls
# smoothly; a third of the quickstart's tokens, as each step's cost is the tokens times a vocabulary of up
# to 262k (Gemma 3).
EXAMPLES = 16
END_OF_TURN = {"qwen3": "<|im_end|>", "llama3": "<|eot_id|>", "gemma3": "<end_of_turn>", "llama2": "</s>"}
# llama.cpp's pre-tokenizer for each; Gemma 3's and Llama 2's SentencePiece-style vocabularies need none ("default").
PRE_TOKENIZER = {"qwen3": "qwen2", "llama3": "llama-bpe", "gemma3": "default", "llama2": "default"}


@pytest.fixture(scope="module", params=list(END_OF_TURN))
def trained(request, family_model, tmp_path_factory):
    model = family_model(request.param)
    output = tmp_path_factory.mktemp("runs")
    data = tmp_path_factory.mktemp("data") / "families.jsonl"
    data.write_text("".join(QUICKSTART.read_text().splitlines(keepends=True)[:EXAMPLES]))
    result = run_cli("train", "--data", str(data), "--model", str(model), "--device", "cpu", "--steps", "30",
                     "--max-seq-length", "256", "--batch-size", "2", "--gradient-accumulation", "1",
                     "--learning-rate", "2e-3", "--checkpoint-every", "0", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    return request.param, model, output, json.loads(result.stdout.splitlines()[-1])["result"]


def test_thirty_steps_on_the_cpu_lower_the_loss(trained):
    _, _, _, result = trained
    losses = result["losses"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


# q8_0 for every family; q4_k_m, whose quantizer is the same code for every family, on one of them (its
# tokenizer checks are those of q8_0, and a gemma3 q4_k_m export alone takes about 40 s on 2 cores).
REQUANTIZED = "llama3"


@pytest.mark.parametrize("quantization", ["q8_0", "q4_k_m"])
def test_the_export_verifies_and_keeps_the_family_tokenizer(trained, quantization):
    family, model, output, result = trained
    if quantization != "q8_0" and family != REQUANTIZED:
        pytest.skip(f"q4_k_m is exported for {REQUANTIZED} only: the quantizer does not depend on the family")
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
    assert metadata["tokenizer.ggml.pre"] == PRE_TOKENIZER[family]
    assert int(metadata["tokenizer.ggml.eos_token_id"]) == tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    assert metadata["tokenizer.chat_template"] == tokenizer.chat_template
    # Every token the tokenizer marks special is a control token: llama.cpp reads it from template text only.
    from backpropagate.contract.gguf_header import read

    types = read(gguf, ["tokenizer.ggml.token_type"])["tokenizer.ggml.token_type"]
    control = 3  # llama.cpp's CONTROL token type
    assert [token.content for i, token in tokenizer.added_tokens_decoder.items()
            if token.special and types[i] != control] == []


def gguf_metadata(path) -> dict:
    """The GGUF's key-value metadata as llama.cpp reads it (vocabulary only: quick even at 150k tokens)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return dict(llm.metadata)
    finally:
        llm.close()


def test_chat_answers_and_ends_its_turn(trained, request):
    family, _, output, result = trained
    if family == "llama2":
        # Known and open: the tiny Llama-2-chat fine-tune repeats its prompt instead of writing " </s>" (seen in
        # llama.cpp after 30 steps, also with the space before </s> trained). Suspected: training tokenizes
        # template text and messages apart, and Llama 2's legacy prefix space adds a "▁" at every cut that a
        # whole prompt never has. Not strict: on some CPUs (an AMD EPYC without AVX-512, 2026-12-07) the same seeded
        # 30 steps round their way to a model that does end its turn, so passing is not yet the fix.
        request.applymarker(pytest.mark.xfail(strict=False, reason="Llama 2 fine-tune does not end its turn yet "
                                                                   "(on most CPUs tried)"))
    exported = sorted((output / result["run_id"] / "gguf").glob("model-*.gguf"))
    if not exported:
        pytest.skip("runs after the export tests")
    for path in exported:
        answer = run_cli("chat", str(path), "--prompt", "What do bees make?", "--max-tokens", "48")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip()
        # Cut at --max-tokens is reported on stderr; silence means the model emitted its end-of-turn token.
        assert "did not end its turn" not in answer.stderr, (family, answer.stdout)


def test_a_gguf_whose_pre_tokenizer_is_wrong_fails_verification_with_the_tokenizer_fix(trained, tmp_path):
    """The classic broken conversion: the right vocabulary split by the wrong pre-tokenizer rules."""
    from backpropagate_stages.gguf import llama_tools

    family = trained[0]
    if PRE_TOKENIZER[family] == "default":
        pytest.skip("a SentencePiece vocabulary has no pre-tokenizer for llama.cpp to get wrong")
    raised = verify_broken_copy(trained, tmp_path, lambda right, wrong: llama_tools.quantize(
        right, wrong, None, {"tokenizer.ggml.pre": "gpt-2"}))
    assert raised.code == "RUNTIME_GGUF_TOKENIZER_MISMATCH"
    assert "tokenizes" in raised.message


# Llama-2-chat opens each user turn with its bos token.
START_OF_TURN = {"qwen3": "<|im_start|>", "llama3": "<|start_header_id|>", "gemma3": "<start_of_turn>",
                 "llama2": "<s>"}


def test_a_gguf_whose_start_of_turn_is_not_a_control_token_fails_with_the_tokenizer_fix(trained, tmp_path):
    """What llama.cpp's converter writes for Gemma 3 unless the stage corrects it: the turn marker typed as
    ordinary text, so llama.cpp spells it out piece by piece. No quantization type can mend that."""
    from backpropagate.contract import gguf_header as header

    family, model, _, _ = trained
    marker = START_OF_TURN[family]
    normal = 1  # llama.cpp's NORMAL token type

    def retype(right, wrong):
        shutil.copyfile(right, wrong)
        header.patch(wrong, "tokenizer.ggml.token_type",
                     {AutoTokenizer.from_pretrained(model).convert_tokens_to_ids(marker): normal})

    raised = verify_broken_copy(trained, tmp_path, retype)
    assert raised.code == "RUNTIME_GGUF_TOKENIZER_MISMATCH" and raised.exit_code == 5
    # The first difference names the token and what each side made of it.
    assert f"{marker!r} is 1 token for the model's tokenizer [{marker!r}] and " in raised.message
    assert raised.render().splitlines()[-1] == (
        "  fix: no other type will help: llama.cpp's converter read the tokenizer differently; check that token "
        "in the merged model's tokenizer.json, or pass --no-verify to keep the GGUF anyway")


def verify_broken_copy(trained, tmp_path, breaks) -> BackpropError:
    """Verify ``breaks(right, wrong)``'s copy of the family's verified q8_0 GGUF; return the error it raises."""
    from backpropagate_stages.gguf import verify
    from backpropagate_stages.gguf.run import check_result

    _, model, output, result = trained
    right = output / result["run_id"] / "gguf" / "model-q8_0.gguf"  # verified by its export
    if not right.exists():
        pytest.skip("runs after the export tests")
    wrong = tmp_path / "wrong.gguf"
    breaks(right, wrong)
    cases = verify.verification_cases(AutoTokenizer.from_pretrained(model), [])
    checked = verify.compare(wrong, output / result["run_id"] / "merged", cases, "q8_0")
    assert checked["tokenizer_mismatches"] > 0 and not checked["passed"]
    with pytest.raises(BackpropError) as raised:
        check_result(checked, "q8_0", lambda event: None)
    return raised.value
