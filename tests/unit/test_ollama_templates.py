"""The Ollama template derived from a tokenizer's chat template renders every conversation as transformers does.

Each published template (tests/unit/chat_templates/) is rendered with jinja2 the way
transformers renders it, and the emitted Ollama Go template with our Go-template
renderer the way Ollama executes it; both must give the same prompt for a system
message, several turns, a question awaiting an answer and an answer being continued.
"""

import re
from pathlib import Path

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.ollama import gotemplate
from backpropagate.ollama.hf_template import HfTemplate
from backpropagate.ollama.templates import PROBES, derive, render_hf, render_ollama

from tests.conftest import ROOT

TEMPLATES = Path(__file__).parent / "chat_templates"
TOKENS = {"llama3": ("<|begin_of_text|>", "<|eot_id|>"), "gemma": ("<bos>", "<eos>"),
          "qwen": ("", "<|im_end|>"), "phi3": ("<s>", "<|endoftext|>")}
SUPPORTED = {
    "tiny_chatml": "chatml", "qwen2_5": "chatml", "qwen3": "chatml", "qwen3_instruct_2507": "chatml",
    "llama3": "llama3", "llama3_1": "llama3", "llama3_2": "llama3", "phi3": "phi3", "phi3_5": "phi3",
    "zephyr": "zephyr", "gemma": "gemma", "gemma3": "gemma", "mistral_v0_1": "mistral", "mistral_v0_2": "mistral",
}
STOPS = {"chatml": ("<|im_start|>", "<|im_end|>"), "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
         "phi3": ("<|end|>", "<|system|>", "<|user|>", "<|assistant|>"),
         "zephyr": ("<|system|>", "</s>", "<|user|>", "<|assistant|>"),
         "gemma": ("<start_of_turn>", "<end_of_turn>"), "mistral": ("[INST]", "[/INST]")}


def tiny_chatml() -> str:
    """The ChatML template scripts/make_tiny_model.py gives the tiny test model."""
    source = (ROOT / "scripts" / "make_tiny_model.py").read_text()
    match = re.search(r"^CHAT_TEMPLATE = \(\n(.*?)\n\)", source, re.S | re.M)
    return eval("(" + match.group(1) + ")")  # the literal as the script writes it


def hf(name: str) -> HfTemplate:
    source = tiny_chatml() if name == "tiny_chatml" else (TEMPLATES / f"{name}.jinja").read_text()
    key = next((k for k in TOKENS if name.startswith(k)), None)
    bos, eos = TOKENS.get(key, ("<s>", "</s>"))
    return HfTemplate(source, {"bos_token": bos, "eos_token": eos})


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_derived_template_renders_every_probe_exactly_as_the_tokenizer_template(name):
    template = hf(name)
    derived = derive(template, name)
    assert derived.family == SUPPORTED[name]
    assert derived.stops == STOPS[derived.family]
    compared = 0
    for messages in PROBES.values():
        try:
            expected = render_hf(template, messages)
        except Exception:  # the template refuses this conversation (a system message): nothing to compare
            continue
        assert render_ollama(derived.template, messages) == expected
        compared += 1
    # system, several turns and an assistant prefix are all compared where the template accepts a system message
    assert compared == (5 if derived.takes_system else 2)


def test_chatml_prompt_is_exactly_the_tiny_models_training_format():
    derived = derive(hf("tiny_chatml"), "tiny")
    prompt = render_ollama(derived.template, PROBES["system, several turns"])
    assert prompt == ("<|im_start|>system\nYou are a terse assistant. Answer in one sentence.<|im_end|>\n"
                      "<|im_start|>user\nWhat do bees make?<|im_end|>\n"
                      "<|im_start|>assistant\nHoney, from nectar.\nThey store it in wax combs.<|im_end|>\n"
                      "<|im_start|>user\nAnd wasps?<|im_end|>\n<|im_start|>assistant\n")


def test_qwen25_default_system_prompt_is_kept_and_a_given_system_replaces_it():
    derived = derive(hf("qwen2_5"), "qwen2.5")
    plain = render_ollama(derived.template, PROBES["one question"])
    assert plain.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                            "assistant.<|im_end|>\n")
    assert render_ollama(derived.template, PROBES["one question"], system="Be brief.").startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")


def test_qwen3_continues_an_answer_after_an_empty_think_block():
    derived = derive(hf("qwen3"), "qwen3")
    assert render_ollama(derived.template, PROBES["continue an answer"]).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\nWasps make")


def test_gemma_folds_ollamas_system_message_into_the_first_user_turn():
    derived = derive(hf("gemma3"), "gemma3")
    assert render_ollama(derived.template, PROBES["one question"], system="Be brief.") == (
        "<start_of_turn>user\nBe brief.\n\nWhat do bees make?<end_of_turn>\n<start_of_turn>model\n")
    assert not derive(hf("gemma"), "gemma").takes_system  # Gemma 1/2 refuse a system message outright


@pytest.mark.parametrize("name", ["llama2", "cohere", "deepseekv3"])
def test_a_template_of_no_supported_family_is_refused_with_the_template_flag_as_fix(name):
    with pytest.raises(BackpropError) as raised:
        derive(hf(name), f"{name}.jinja")
    assert raised.value.code == "INPUT_CHAT_TEMPLATE_UNKNOWN"
    assert raised.value.fix == "pass --template FILE (an Ollama Go template) and --stop TOKEN for each stop token"


def test_a_tokenizer_without_chat_template_is_refused():
    with pytest.raises(BackpropError) as raised:
        derive(HfTemplate(""), "model.gguf")
    assert raised.value.message.endswith("it has no chat template")


def test_a_wrong_family_template_is_detected_by_rendering_not_by_name():
    """ChatML's Go template does not pass for Llama 3: the probes differ, so the family is Llama 3."""
    from backpropagate.ollama.templates import mismatches, turns_template

    chatml = turns_template("<|im_start|>{role}\n", "<|im_end|>\n")
    differing, accepted = mismatches(hf("llama3"), chatml)
    assert accepted == 5 and len(differing) == 5


class TestGoTemplateRenderer:
    """The subset of Go's text/template that the renderer executes, with Go's rules."""

    def test_trim_markers_remove_whitespace_on_their_side_only(self):
        assert gotemplate.render("a  \n{{- .X -}}\n  b {{ .X }} c", {"X": "x"}) == "axb x c"

    def test_range_with_index_variables_else_and_assignment_across_iterations(self):
        template = ('{{ $seen := "" }}{{ range $i, $m := .L }}{{ if eq $i 0 }}{{ $seen = $m }}{{ continue }}'
                    '{{ end }}{{ $i }}={{ $m }};{{ end }}[{{ $seen }}]{{ range .Empty }}x{{ else }}none{{ end }}')
        assert gotemplate.render(template, {"L": ["a", "b", "c"], "Empty": []}) == "1=b;2=c;[a]none"

    def test_last_message_test_as_ollama_templates_write_it(self):
        template = '{{ range $i, $_ := .M }}{{ if eq (len (slice $.M $i)) 1 }}last:{{ . }}{{ end }}{{ end }}'
        assert gotemplate.render(template, {"M": ["a", "b", "c"]}) == "last:c"

    def test_and_or_not_ne_and_printf(self):
        template = '{{ if and .A (not .B) }}1{{ end }}{{ if or .B .A }}2{{ end }}{{ if ne .A "y" }}3{{ end }}' \
                   '{{ printf "%s-%s" .A "z" }}'
        assert gotemplate.render(template, {"A": "x", "B": ""}) == "123x-z"

    def test_unsupported_syntax_is_refused_not_guessed(self):
        with pytest.raises(ValueError):
            gotemplate.render("{{ .A | upper }}", {"A": "x"})
        with pytest.raises(ValueError):
            gotemplate.render("{{ if .A }}x", {"A": "x"})
