"""SmolLM2-135M-Instruct after a four-run campaign, exported to GGUF through the CLI: a good export verifies, a
broken one does not.

SLOW, real model: one campaign through `backprop multi-run` (four fact sets of examples/forgetting/, 8 facts in
three phrasings each, one set a run, the quickstart's flags) shared by every test here, then a q4_k_m and a q8_0
export. The exports verify on every run's rows, which the fine-tune has learned; before, a campaign's export
verified on two built-in sentences (29 predictions), where rounding flips near-ties and refused both types.
Planted defects in the campaign's own q8_0 GGUF (a tensor zeroed, a token llama.cpp splits) still fail.
"""

import json
import os
import shutil

import pytest
from backpropagate.contract.errors import BackpropError

from tests.conftest import ROOT, run_cli
from tests.local.test_real_model import FLAGS, smollm2  # noqa: F401  (the fixture: the real model, fetched once)

# Four SmolLM2 trainings of 20 steps take about 20 minutes on 2 cores: more than CI's budget for one test, and
# not yet timed on a quiet machine. Opt in until a shorter campaign holds the same line.
pytestmark = pytest.mark.skipif(os.environ.get("BACKPROPAGATE_SLOW_TESTS") != "1",
                                reason="trains a four-run SmolLM2 campaign (~20 min on 2 cores); "
                                       "set BACKPROPAGATE_SLOW_TESTS=1 to run it")

FACT_SETS = [ROOT / "examples" / "forgetting" / f"facts_{name}.jsonl" for name in "abcd"]
TYPES = ("q4_k_m", "q8_0")


@pytest.fixture(scope="module")
def campaign(smollm2, tmp_path_factory):  # noqa: F811
    output = tmp_path_factory.mktemp("campaign")
    trained = run_cli("multi-run", *[arg for data in FACT_SETS for arg in ("--data", str(data))], "--model",
                      str(smollm2), "--device", "cpu", *FLAGS, "--output", str(output), "--json")
    assert trained.returncode == 0, trained.stderr
    campaign_id = json.loads(trained.stdout.splitlines()[-1])["result"]["campaign_id"]
    exports = {}
    for quantization in TYPES:
        exports[quantization] = run_cli("export", campaign_id, "--format", "gguf", "--quantization", quantization,
                                        "--output", str(output), "--json")
    return output / campaign_id, exports


def test_a_four_run_campaign_exports_to_q4_k_m_and_q8_0_verified_on_every_runs_rows(campaign):
    folder, exports = campaign
    for quantization, exported in exports.items():
        assert exported.returncode == 0, exported.stderr
    checks = json.loads((folder / "gguf" / "verify.json").read_text())
    for quantization in TYPES:
        check = checks[f"model-{quantization}.gguf"]
        assert check["passed"] and check["tokenizer_mismatches"] == 0, check["problems"]
        assert check["sequences"] == 32  # 8 rows of each run's 24, through the chat template
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


def test_the_campaigns_q8_0_with_one_tensor_zeroed_fails_verification(campaign, tmp_path):
    from gguf import GGUFReader

    folder, _ = campaign
    planted = tmp_path / "zeroed.gguf"
    shutil.copy(folder / "gguf" / "model-q8_0.gguf", planted)
    tensor = next(t for t in GGUFReader(planted, "r+").tensors if t.name == "blk.0.ffn_down.weight")
    tensor.data[...] = 0

    result, error = verify_planted(folder, planted)
    assert error.code == "RUNTIME_GGUF_VERIFY_FAILED" and result["tokenizer_mismatches"] == 0
    assert result["top1_agreement"] < result["thresholds"]["min_top1_agreement"]
    assert error.fix == "try a larger type (f16), or pass --no-verify to keep it anyway"


def test_the_campaigns_q8_0_with_a_token_llama_cpp_splits_fails_on_the_tokenizer(campaign, tmp_path):
    from gguf import GGUFReader

    folder, _ = campaign
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
