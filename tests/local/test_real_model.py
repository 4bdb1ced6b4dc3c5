"""SmolLM2-135M-Instruct, taught the quickstart's made-up facts: trained, exported to q4_k_m, asked through chat.

The real pretrained model (scripts/fetch_model.py, cached under models/) with the quickstart's flags and its
quality report. The base answers none of the facts; the fine-tune, from its own weights (the report) and
from the q4_k_m GGUF (through `backprop chat`), answers at least 7 of 8 on a phrasing it never saw, and at
least 5 of the 6 general questions as the base does. About 7 minutes on 2 cores, most of it the 20
training steps; slow because it is the one test of the whole job on a real model.
"""

import importlib.util
import json

import pytest
from backpropagate.contract.quality import hit

from tests.conftest import ROOT, run_cli

DATA = ROOT / "examples" / "quickstart.jsonl"
EVAL_FILE = ROOT / "examples" / "quickstart_eval.jsonl"
EVAL = [json.loads(line) for line in EVAL_FILE.read_text().splitlines()]
# The flags the quickstart trains with (docs/measurements.md: the defaults learn too slowly here).
FLAGS = ["--steps", "20", "--lora-r", "16", "--lora-alpha", "32", "--learning-rate", "1e-3",
         "--max-seq-length", "256", "--checkpoint-every", "0"]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.spec_from_file_location("fetch_model", ROOT / "scripts" / "fetch_model.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    return fetch.fetch_model()  # cached: scripts/test.sh fetches it before the suite


def knows(answer: str, expect: str) -> bool:
    return hit(answer, expect)  # the quality report's own rule: any of "a|b", without case


def test_a_fine_tune_of_smollm2_answers_taught_facts_from_its_weights_and_its_gguf_and_keeps_what_it_knew(
        smollm2, tmp_path):
    taught = [row for row in EVAL if row["kind"] == "taught"]
    general = [row for row in EVAL if row["kind"] == "general"]
    assert len(taught) >= 8 and len(general) >= 6

    trained = run_cli("train", "--data", str(DATA), "--model", str(smollm2), "--device", "cpu", *FLAGS,
                      "--eval-prompts", str(EVAL_FILE), "--eval-max-tokens", str(MAX_TOKENS),
                      "--output", str(tmp_path), "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    report = {a["prompt"]: a for a in json.loads((tmp_path / run_id / "quality.json").read_text())["answers"]}
    assert set(report) == {row["prompt"] for row in EVAL}

    # The base (the adapter switched off) knows none of the facts and every general answer.
    assert not [row["prompt"] for row in taught if knows(report[row["prompt"]]["base"], row["expect"])]
    assert all(knows(report[row["prompt"]]["base"], row["expect"]) for row in general), report

    def missed_and_forgot(answer_of):
        missed = [(row["prompt"], answer_of(row)) for row in taught if not knows(answer_of(row), row["expect"])]
        forgot = [(row["prompt"], answer_of(row)) for row in general if not knows(answer_of(row), row["expect"])]
        return missed, forgot

    missed, forgot = missed_and_forgot(lambda row: report[row["prompt"]]["fine_tune"])
    assert len(missed) <= 1 and len(forgot) <= 1, (missed, forgot)

    exported = run_cli("export", run_id, "--format", "gguf", "--quantization", "q4_k_m", "--output", str(tmp_path),
                       "--json")
    assert exported.returncode == 0, exported.stderr
    check = json.loads((tmp_path / run_id / "gguf" / "verify.json").read_text())["model-q4_k_m.gguf"]
    assert check["passed"], check["problems"]

    def chat(row) -> str:
        answered = run_cli("chat", run_id, "--prompt", row["prompt"], "--max-tokens", str(MAX_TOKENS),
                           "--output", str(tmp_path))
        assert answered.returncode == 0, answered.stderr
        return answered.stdout

    answers = {row["prompt"]: chat(row) for row in EVAL}
    missed, forgot = missed_and_forgot(lambda row: answers[row["prompt"]])
    # Measured with these flags (one seeded run, which the CPU repeats): 8 of 8 facts and 5 of 6 general from
    # the GGUF, 7 of 8 and 5 of 6 from the weights; the week's days become 168 (docs/measurements.md).
    assert len(missed) <= 1 and len(forgot) <= 1, (missed, forgot)
