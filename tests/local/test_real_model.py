"""SmolLM2-135M-Instruct, taught the quickstart's made-up facts: trained, exported to q4_k_m, asked through chat.

The real pretrained model (scripts/fetch_model.py, cached under models/) with the quickstart's flags. The
base answers none of the facts; the q4_k_m GGUF, through `backprop chat`, answers at least 7 of 8 on a
phrasing it never saw, and answers at least 4 of the 6 general questions as the base does (all 6 is not reached yet). About 8 minutes on 2 cores,
most of it the 20 training steps.
"""

import importlib.util
import json

import pytest
from backpropagate.contract.quality import hit

from tests.conftest import ROOT, run_cli

DATA = ROOT / "examples" / "quickstart.jsonl"
EVAL = [json.loads(line) for line in (ROOT / "examples" / "quickstart_eval.jsonl").read_text().splitlines()]
# The flags the quickstart trains with (measured in the README: the defaults learn too slowly here).
FLAGS = ["--steps", "20", "--lora-r", "16", "--lora-alpha", "32", "--learning-rate", "1e-3",
         "--max-seq-length", "256", "--checkpoint-every", "0"]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.spec_from_file_location("fetch_model", ROOT / "scripts" / "fetch_model.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    return fetch.fetch_model()  # cached: scripts/test.sh fetches it before the suite


def base_answers(model_dir, prompts: list[str]) -> list[str]:
    """Greedy answers of the base model in transformers, the reference the fine-tune is held to."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers = []
    for prompt in prompts:
        inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        answers.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def knows(answer: str, expect: str) -> bool:
    return hit(answer, expect)  # the quality report's own rule: any of "a|b", without case


def test_a_fine_tune_of_smollm2_answers_taught_facts_from_its_gguf_and_keeps_what_the_base_knew(smollm2, tmp_path):
    taught = [row for row in EVAL if row["kind"] == "taught"]
    general = [row for row in EVAL if row["kind"] == "general"]
    assert len(taught) >= 8 and len(general) >= 5
    base = base_answers(smollm2, [row["prompt"] for row in EVAL])
    base_by_prompt = dict(zip((row["prompt"] for row in EVAL), base))
    assert not [row["prompt"] for row in taught if knows(base_by_prompt[row["prompt"]], row["expect"])]
    known = [row for row in general if knows(base_by_prompt[row["prompt"]], row["expect"])]
    assert len(known) == len(general), base  # the file holds only questions the base answers

    trained = run_cli("train", "--data", str(DATA), "--model", str(smollm2), "--device", "cpu", *FLAGS,
                      "--output", str(tmp_path), "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    exported = run_cli("export", run_id, "--format", "gguf", "--quantization", "q4_k_m", "--output", str(tmp_path),
                       "--json")
    assert exported.returncode == 0, exported.stderr
    check = json.loads((tmp_path / run_id / "gguf" / "verify.json").read_text())["model-q4_k_m.gguf"]
    assert check["passed"], check["problems"]

    def chat(prompt: str) -> str:
        answered = run_cli("chat", run_id, "--prompt", prompt, "--max-tokens", str(MAX_TOKENS),
                           "--output", str(tmp_path))
        assert answered.returncode == 0, answered.stderr
        return answered.stdout

    answers = {row["prompt"]: chat(row["prompt"]) for row in EVAL}
    missed = [(row["prompt"], answers[row["prompt"]]) for row in taught if not knows(answers[row["prompt"]],
                                                                                      row["expect"])]
    assert len(missed) <= 1, missed
    forgot = [(row["prompt"], answers[row["prompt"]]) for row in general if not knows(answers[row["prompt"]],
                                                                                       row["expect"])]
    # Measured with these flags (one run, seeded, so every run): 2 of the 6 are lost, the capital of France
    # becoming Marrowgate (the taught capital) and the week's days; 5e-4 keeps them but learns only 4 of 8
    # facts. Keeping all general answers at 7 of 8 facts is not reached yet; this holds the line measured.
    assert len(forgot) <= 2, forgot
