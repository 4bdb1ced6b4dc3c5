"""The Ollama template and stop tokens derived from the real Qwen3, Llama 3, Gemma 3 and Llama 2 tokenizers render
every probe conversation (system message, several turns, an answer being continued) exactly as their own chat
templates do, and stop at the family's end-of-turn token.

The tokenizer files are the ones scripts/fetch_tokenizers.py fetches (run by scripts/test.sh).
"""

import pytest
from backpropagate.contract.chat_template import HfTemplate
from backpropagate.ollama.source import tokenizer_template
from backpropagate.ollama.templates import PROBES, derive, mismatches, render_hf, render_ollama

from tests.conftest import ROOT

CACHE = ROOT / ".cache" / "tokenizers"
FAMILIES = {"qwen3": ("chatml", "<|im_end|>"), "llama3": ("llama3", "<|eot_id|>"),
            "gemma3": ("gemma", "<end_of_turn>"), "llama2": ("llama2", "</s>")}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_real_tokenizers_template_becomes_an_equivalent_ollama_template(name):
    folder = CACHE / name
    if not (folder / "tokenizer_config.json").exists():
        pytest.fail(f"{folder} is missing: run python scripts/fetch_tokenizers.py (scripts/test.sh does)")
    source, tokens = tokenizer_template(folder)
    hf = HfTemplate(source, tokens)
    derived = derive(hf, str(folder))
    family, end_of_turn = FAMILIES[name]
    assert derived.family == family
    assert end_of_turn in derived.stops
    differing, accepted = mismatches(hf, derived.template)
    assert differing == [] and accepted == len(PROBES)
    conversation = PROBES["system, several turns"]
    assert render_ollama(derived.template, conversation) == render_hf(hf, conversation)
