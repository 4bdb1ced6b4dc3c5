"""SmolLM2-135M-Instruct taught four sets of made-up facts one run at a time by `backprop multi-run` with its
default recipe (SLAO, replay), exported to GGUF through the CLI and asked through `backprop chat`.

One campaign, shared by every test here: the four fact sets of examples/forgetting/ (8 facts in three
phrasings each, one set a run), with the quickstart's LoRA and shorter steps than the quickstart's, so that
the four runs fit CI (CAMPAIGN_FLAGS says what and why). It must keep every set: asked each fact in a
phrasing it never saw, its q4_k_m GGUF answers the last set and the average of the four at the line measured
for it, and no earlier set falls far below it. Its q4_k_m and q8_0 exports verify on every run's rows; planted
defects in its q8_0 GGUF (a tensor zeroed, a token llama.cpp splits) still fail verification.
"""

import json
import shutil

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.quality import hit

from tests.conftest import ROOT, run_cli
from tests.local.test_real_model import smollm2  # noqa: F401  (the fixture: the real model, fetched once)

FACTS = ROOT / "examples" / "forgetting"
SETS = "abcd"
# The quickstart's LoRA (rank 16 on every linear layer, docs/measurements.md) at batch 2 x accumulation 2 of
# 128-token rows, a quarter of the quickstart's tokens a step, so that four runs take about as long as its one;
# at its rate of 1e-3 such short runs left the last set at 3 of 8, so twice that.
CAMPAIGN_FLAGS = ["--steps", "20", "--lora-r", "16", "--lora-alpha", "32", "--learning-rate", "2e-3",
                  "--max-seq-length", "128", "--batch-size", "2", "--gradient-accumulation", "2",
                  "--warmup-steps", "2", "--checkpoint-every", "0"]
TYPES = ("q4_k_m", "q8_0")
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def campaign(smollm2, tmp_path_factory):  # noqa: F811
    output = tmp_path_factory.mktemp("campaign")
    data = [arg for name in SETS for arg in ("--data", str(FACTS / f"facts_{name}.jsonl"))]
    trained = run_cli("multi-run", *data, "--model", str(smollm2), "--device", "cpu", *CAMPAIGN_FLAGS,
                      "--output", str(output), "--json")
    assert trained.returncode == 0, trained.stderr
    campaign_id = json.loads(trained.stdout.splitlines()[-1])["result"]["campaign_id"]
    return output / campaign_id, export(output / campaign_id, "q4_k_m")


@pytest.fixture(scope="module")
def q8_0(campaign):
    """The campaign's q8_0 export, which only the verification tests ask for (the continual test does not
    wait for it)."""
    folder, _ = campaign
    return export(folder, "q8_0")


def export(folder, quantization: str):
    return run_cli("export", folder.name, "--format", "gguf", "--quantization", quantization,
                   "--output", str(folder.parent), "--json")


def right_of_each_set(gguf) -> dict[str, int]:
    """How many of each set's 8 facts the GGUF answers, asked in the phrasing no run trained on."""
    right = {}
    for name in SETS:
        prompts = [json.loads(line) for line in (FACTS / f"facts_{name}_prompts.jsonl").read_text().splitlines()]
        answers = []
        for row in prompts:
            asked = run_cli("chat", str(gguf), "--prompt", row["prompt"], "--max-tokens", str(MAX_TOKENS))
            assert asked.returncode == 0, asked.stderr
            answers.append(hit(asked.stdout, row["expect"]))
        right[name] = sum(answers)
    return right


def test_the_default_recipe_keeps_every_set_of_a_four_run_campaign_in_its_q4_k_m_gguf(campaign):
    folder, exported = campaign
    assert exported.returncode == 0, exported.stderr
    plan = json.loads((folder / "campaign.json").read_text())
    assert plan["merge"] == "slao" and plan["replay_fraction"] == 1.0  # what multi-run does with no flag
    right = right_of_each_set(folder / "gguf" / "model-q4_k_m.gguf")
    print(f"right of 8 through the q4_k_m GGUF: {right}")
    # Measured with these flags (docs/measurements.md, "The continual test in CI"): 7, 6, 7, 7 of 8 on a, b, c,
    # d, 27 of 32; held with one answer to spare on each set and three in all.
    assert right["d"] >= 6, right
    assert min(right.values()) >= 5 and sum(right.values()) >= 24, right


def test_the_campaigns_q4_k_m_and_q8_0_exports_verify_on_every_runs_rows(campaign, q8_0):
    folder, q4_k_m = campaign
    for exported in (q4_k_m, q8_0):
        assert exported.returncode == 0, exported.stderr
    checks = json.loads((folder / "gguf" / "verify.json").read_text())
    for quantization in TYPES:
        check = checks[f"model-{quantization}.gguf"]
        assert check["passed"] and check["tokenizer_mismatches"] == 0, check["problems"]
        assert check["sequences"] == 32  # 8 rows of each run's data file, through the chat template
        assert check["predictions"] > 800


def verify_planted(folder, gguf):
    from transformers import AutoTokenizer

    from backpropagate_stages.gguf import run, verify

    cases = verify.verification_cases(AutoTokenizer.from_pretrained(folder / "merged"),
                                      run.read_datasets([folder / "data"]))
    result = verify.compare(gguf, folder / "merged", cases, "q8_0")
    with pytest.raises(BackpropError) as caught:
        run.check_result(result, "q8_0", lambda event: None)
    return result, caught.value


def test_the_campaigns_q8_0_with_one_tensor_zeroed_fails_verification(campaign, q8_0, tmp_path):
    from gguf import GGUFReader

    folder, _ = campaign
    assert q8_0.returncode == 0, q8_0.stderr
    planted = tmp_path / "zeroed.gguf"
    shutil.copy(folder / "gguf" / "model-q8_0.gguf", planted)
    tensor = next(t for t in GGUFReader(planted, "r+").tensors if t.name == "blk.0.ffn_down.weight")
    tensor.data[...] = 0

    result, error = verify_planted(folder, planted)
    assert error.code == "RUNTIME_GGUF_VERIFY_FAILED" and result["tokenizer_mismatches"] == 0
    assert result["top1_agreement"] < result["thresholds"]["min_top1_agreement"]
    assert error.fix == "try a larger type (f16), or pass --no-verify to keep it anyway"


def test_the_campaigns_q8_0_with_a_token_llama_cpp_splits_fails_on_the_tokenizer(campaign, q8_0, tmp_path):
    from gguf import GGUFReader

    folder, _ = campaign
    assert q8_0.returncode == 0, q8_0.stderr
    planted = tmp_path / "split.gguf"
    shutil.copy(folder / "gguf" / "model-q8_0.gguf", planted)
    field = GGUFReader(planted, "r+").fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    # Renamed in place to a text no token has: llama.cpp can no longer make " of" one token and falls back to
    # single-byte tokens.
    renamed = next("Ġo" + end for end in "~^`|" if "Ġo" + end not in tokens)
    piece = field.parts[field.data[tokens.index("Ġof")]]
    piece[:] = list(renamed.encode())

    result, error = verify_planted(folder, planted)
    assert error.code == "RUNTIME_GGUF_TOKENIZER_MISMATCH"
    assert error.message.startswith("the q8_0 GGUF does not tokenize as the merged model does: "), error.message
    assert "for the model's tokenizer" in error.message and "for llama.cpp" in error.message
