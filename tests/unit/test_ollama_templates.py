"""The Ollama template derived from a tokenizer's chat template renders every conversation as transformers does.

The corpus (tests/unit/chat_templates/corpus.json, see its README) is real published chat
templates. Each is rendered with jinja2 the way transformers renders it, and the emitted
Ollama Go template with our Go-template renderer the way Ollama executes it; both must give
the same prompt for every probe: sentinel and plain conversations, a system message, several
turns, a question awaiting an answer, an answer being continued, thinking unset, on and off.
test_ollama_go_template.py runs the same templates through Go's own text/template.
"""

import functools
import hashlib
import json
import re
from pathlib import Path

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.ollama import gotemplate
from backpropagate.contract.chat_template import HfTemplate
from backpropagate.ollama.probes import CONTINUE_AFTER_REASONING, REASONING_PROBE
from backpropagate.ollama.templates import PROBES, OllamaTemplate, derive, probes_for, render_hf, render_ollama

from tests.conftest import ROOT

TEMPLATES = Path(__file__).parent / "chat_templates"
CORPUS = json.loads((TEMPLATES / "corpus.json").read_text(encoding="utf-8"))
# The templates no linear Ollama template matches, and why (the README gives the figures).
SEVERAL_PARTS = ("the model writes its answer's header itself (after the generation prompt {}), with {}, which the "
                 "template also writes between turns: an answer in several parts that one template and its stops "
                 "cannot frame")
REFUSED = {
    "llama.cpp/Kimi-K3.jinja": SEVERAL_PARTS.format(
        "'message<|sep|><|end_of_msg|><|open|>message role=\"assistant\"<|sep|><|open|>think<|sep|>'",
        "<|close|>, <|sep|>, <|open|>"),
    "llama.cpp/muse-glimmer.jinja": SEVERAL_PARTS.format("'<|start|>assistant'", "<|message|>"),
    "llama.cpp/openai-gpt-oss-120b.jinja": SEVERAL_PARTS.format("'<|start|>assistant'", "<|message|>"),
    "llama.cpp/upstage-Solar-Open-100B.jinja": SEVERAL_PARTS.format("'<|begin|>assistant'", "<|content|>"),
    "llama.cpp/fireworks-ai-llama-3-firefunction-v2.jinja": "it refuses a plain user/assistant conversation "
                                                             "('functions' is undefined)",
    "llama.cpp/tests-ai-sage-GigaChat-20B-A3B-instruct.jinja": "it refuses a plain user/assistant conversation "
                                                                "('additional_special_tokens' is undefined)",
    "llama.cpp/tests-yandex-YandexGPT-5-Lite-8B-instruct.jinja": "it refuses a plain user/assistant conversation "
                                                                  "(the final message does not appear in the "
                                                                  "rendered prompt)",
    "trl/idefics3.jinja": "the user message is not written as given (or not where it was)",
    "trl/llava_next.jinja": "the user message is not written as given (or not where it was)",
    "trl/smolvlm.jinja": "the user message is not written as given (or not where it was)",
}
CHATML_STOPS = ("<|im_end|>", "<|im_start|>")
LLAMA3_STOPS = ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>")


def tiny_chatml() -> str:
    """The ChatML template scripts/make_tiny_model.py gives the tiny test model."""
    source = (ROOT / "scripts" / "make_tiny_model.py").read_text()
    match = re.search(r"^CHAT_TEMPLATE = \(\n(.*?)\n\)", source, re.S | re.M)
    return eval("(" + match.group(1) + ")")  # the literal as the script writes it


def hf(file: str) -> HfTemplate:
    """A corpus template with its model's special tokens."""
    if file == "tiny_chatml":
        return HfTemplate(tiny_chatml(), {"bos_token": "<s>", "eos_token": "<|im_end|>"})
    entry = next(e for e in CORPUS if e["file"] == file)
    return HfTemplate((TEMPLATES / file).read_text(encoding="utf-8"),
                      {"bos_token": entry["bos_token"], "eos_token": entry["eos_token"]})


@functools.cache
def derived_from(file: str) -> OllamaTemplate:
    """The template derived from a corpus template, once per test session (the Go check reuses it)."""
    return derive(hf(file), file)


def test_the_corpus_holds_at_least_40_distinct_published_templates_each_pinned():
    assert len(CORPUS) >= 40
    assert len({entry["sha256"] for entry in CORPUS}) == len(CORPUS)
    for entry in CORPUS:
        assert entry["model"] and entry["source"]
        text = (TEMPLATES / entry["file"]).read_text(encoding="utf-8")
        assert hashlib.sha256(text.encode()).hexdigest() == entry["sha256"], entry["file"]


@pytest.mark.parametrize("file", [entry["file"] for entry in CORPUS if entry["file"] not in REFUSED])
def test_derived_template_renders_every_probe_exactly_as_the_tokenizer_template(file):
    template = hf(file)
    derived = derived_from(file)
    probes = probes_for(template, derived.takes_system, derived.thinks, derived.reasons)
    for probe in probes:
        assert render_ollama(derived.template, probe.messages, think=probe.think) == \
            render_hf(template, probe.messages, probe.think), probe.name
    assert derived.probes_checked == len(probes)
    assert derived.stops and not any("think" in stop for stop in derived.stops)


@pytest.mark.parametrize("file", sorted(REFUSED))
def test_a_template_no_linear_ollama_template_matches_is_refused_saying_why_with_the_template_flag_as_fix(file):
    with pytest.raises(BackpropError) as raised:
        derive(hf(file), file)
    assert raised.value.code == "INPUT_CHAT_TEMPLATE_UNKNOWN"
    assert raised.value.message == f"no Ollama template can be derived from the chat template of {file}: " \
                                   f"{REFUSED[file]}"
    assert raised.value.fix == "pass --template FILE (an Ollama Go template) and --stop TOKEN for each stop token"


def test_an_assistant_suffix_that_depends_on_the_content_is_refused_naming_the_conversation():
    content_dependent = HfTemplate(
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
        "{% if m.role == 'assistant' and m.content.endswith('.') %}<|end|>{% elif m.role == 'assistant' %}<|stop|>"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    with pytest.raises(BackpropError) as raised:
        derive(content_dependent, "t.jinja")
    assert raised.value.message == (
        "no Ollama template can be derived from the chat template of t.jinja: the conversation 'system, several "
        "turns' comes out differently (it depends on the content): the template writes 'e it in wax "
        "combs.<|end|><|user|>And wasps?<|assis' where the derived one writes 'e it in wax combs.<|stop|><|user|>"
        "And wasps?<|assi'")


def test_chatml_prompt_is_exactly_the_tiny_models_training_format_and_stops_at_its_end_of_turn():
    derived = derive(hf("tiny_chatml"), "tiny")
    prompt = render_ollama(derived.template, PROBES["system, several turns"])
    assert prompt == ("<|im_start|>system\nYou are a terse assistant. Answer in one sentence.<|im_end|>\n"
                      "<|im_start|>user\nWhat do bees make?<|im_end|>\n"
                      "<|im_start|>assistant\nHoney, from nectar.\nThey store it in wax combs.<|im_end|>\n"
                      "<|im_start|>user\nAnd wasps?<|im_end|>\n<|im_start|>assistant\n")
    assert derived.stops == CHATML_STOPS and derived.family == "chatml"


def test_qwen25_default_system_prompt_is_kept_and_a_given_system_replaces_it():
    derived = derive(hf("qwen2_5.jinja"), "qwen2.5")
    default = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert derived.default_system == default
    assert render_ollama(derived.template, PROBES["one question"]).startswith(
        f"<|im_start|>system\n{default}<|im_end|>\n")
    assert render_ollama(derived.template, PROBES["one question"], system="Be brief.").startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")


def test_qwen3_follows_ollamas_think_option_as_enable_thinking_and_thinks_when_it_is_unset():
    template = hf("qwen3.jinja")
    derived = derive(template, "qwen3")
    assert derived.thinks
    question = PROBES["one question"]
    for think in (None, True):
        assert render_ollama(derived.template, question, think=think).endswith("<|im_start|>assistant\n")
    assert render_ollama(derived.template, question, think=False).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render_ollama(derived.template, question, think=False) == render_hf(template, question, think=False)
    assert render_ollama(derived.template, PROBES["continue an answer"]).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\nWasps make")


def test_qwen3_continues_an_answer_after_the_reasoning_ollama_passes_as_its_thinking():
    template = hf("qwen3.jinja")
    derived = derive(template, "qwen3")
    assert derived.reasons
    prompt = render_ollama(derived.template, CONTINUE_AFTER_REASONING)
    assert prompt.endswith("<|im_start|>assistant\n<think>\nqqreasonqq\n</think>\n\nqqanswer2qq")
    assert prompt == render_hf(template, CONTINUE_AFTER_REASONING)


def test_gemma4_asks_for_thinking_with_a_system_turn_of_its_own_only_when_ollamas_think_is_on():
    template = hf("trl/gemma4.jinja")
    derived = derive(template, "gemma4")
    assert derived.thinks
    question = PROBES["one question"]
    assert render_ollama(derived.template, question, think=True) == render_hf(template, question, think=True) == (
        "<|turn>system\n<|think|>\n<turn|>\n<|turn>user\nWhat do bees make?<turn|>\n<|turn>model\n")
    for think in (None, False):
        assert render_ollama(derived.template, question, think=think) == (
            "<|turn>user\nWhat do bees make?<turn|>\n<|turn>model\n")


def test_smollm3_switches_its_reasoning_mode_in_its_default_system_prompt_by_ollamas_think():
    template = hf("llama.cpp/HuggingFaceTB-SmolLM3-3B.jinja")
    derived = derive(template, "smollm3")
    question = PROBES["one question"]
    assert "Reasoning Mode: /think\n" in render_ollama(derived.template, question)
    off = render_ollama(derived.template, question, think=False)
    assert off == render_hf(template, question, think=False)
    assert "Reasoning Mode: /no_think\n" in off and off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n")


def test_a_system_message_merged_into_the_last_user_turn_stays_there_while_an_answer_is_continued():
    last_user = HfTemplate(
        "{% set ns = namespace(last=-1) %}{% for m in messages %}{% if m.role == 'user' %}"
        "{% set ns.last = loop.index0 %}"
        "{% endif %}{% endfor %}{% if messages[0].role == 'system' %}{% set system = messages[0].content %}{% endif %}"
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST]{% if system is defined and "
        "loop.index0 == ns.last %}{{ system }}\n\n{% endif %}{{ m.content }}[/INST]{% elif m.role == 'assistant' %}"
        "{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}", {"bos_token": "<s>", "eos_token": "</s>"})
    derived = derive(last_user, "last-user.jinja")
    assert derived.system_placement == "last"
    assert render_ollama(derived.template, PROBES["system, continue an answer"]) == (
        "[INST]What do bees make?[/INST]Honey, from nectar.\nThey store it in wax combs.</s>"
        "[INST]You are a terse assistant. Answer in one sentence.\n\nAnd wasps?[/INST]Wasps make")


@pytest.mark.parametrize("file", ["qwen3.jinja", "trl/deepseek_r1_distill.jinja"])
def test_the_reasoning_of_earlier_answers_is_dropped_as_the_template_drops_it(file):
    template = hf(file)
    derived = derive(template, file)
    prompt = render_ollama(derived.template, REASONING_PROBE)
    assert "qqreasonqq" not in prompt and "qqanswer1qq" in prompt
    assert prompt == render_hf(template, REASONING_PROBE)


def test_deepseek_r1_opens_the_answer_inside_its_reasoning_and_stops_at_end_of_sentence():
    derived = derive(hf("trl/deepseek_r1_distill.jinja"), "r1")
    assert render_ollama(derived.template, PROBES["system and question"]) == (
        "You are a terse assistant. Answer in one sentence.<｜User｜>What do bees make?<｜Assistant｜><think>\n")
    assert derived.stops == ("<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>")


def test_llama31_writes_its_date_header_with_and_without_a_system_message():
    derived = derive(hf("llama3_1.jinja"), "llama3.1")
    header = ("<|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n")
    assert render_ollama(derived.template, PROBES["one question"]).startswith(header + "<|eot_id|>")
    assert render_ollama(derived.template, PROBES["one question"], system="Be brief.").startswith(
        header + "Be brief.<|eot_id|>")
    assert derived.stops == LLAMA3_STOPS


def test_llama32_holds_the_date_of_registration_where_its_template_writes_today():
    from datetime import datetime

    derived = derive(hf("llama3_2.jinja"), "llama3.2")
    assert f"Today Date: {datetime.now().strftime('%d %b %Y')}\n\n" in derived.template


def test_mistral_nemo_merges_the_system_message_into_the_last_user_turn():
    derived = derive(hf("llama.cpp/mistralai-Mistral-Nemo-Instruct-2407.jinja"), "nemo")
    assert derived.system_placement == "last-final"
    assert render_ollama(derived.template, PROBES["system, several turns"]) == (
        "[INST]What do bees make?[/INST]Honey, from nectar.\nThey store it in wax combs.</s>"
        "[INST]You are a terse assistant. Answer in one sentence.\n\nAnd wasps?[/INST]")
    assert derived.stops == ("</s>", "[INST]", "[/INST]")


def test_mistral_v1_merges_the_system_message_into_the_first_user_turn():
    derived = derive(hf("llama.cpp/tests-mistralai-Mistral-7B-Instruct-v0.2.jinja"), "mistral v1")
    assert render_ollama(derived.template, PROBES["system, several turns"]) == (
        " [INST] You are a terse assistant. Answer in one sentence.\n\nWhat do bees make? [/INST] Honey, from "
        "nectar.\nThey store it in wax combs.</s> [INST] And wasps? [/INST]")


def test_llama2_puts_the_system_message_in_sys_tags_inside_the_first_instruction():
    derived = derive(hf("llama2.jinja"), "llama2")
    assert derived.family == "llama2"
    assert render_ollama(derived.template, PROBES["system, several turns"]) == (
        "[INST] <<SYS>>\nYou are a terse assistant. Answer in one sentence.\n<</SYS>>\n\nWhat do bees make? "
        "[/INST] Honey, from nectar.\nThey store it in wax combs. </s><s>[INST] And wasps? [/INST]")


def test_phi4_writes_the_assistant_header_with_the_user_turn():
    derived = derive(hf("llama.cpp/tests-phi-4.jinja"), "phi-4")
    assert render_ollama(derived.template, PROBES["one question"]) == (
        "<|im_start|>user<|im_sep|>What do bees make?<|im_end|><|im_start|>assistant<|im_sep|>")
    assert derived.stops == ("<|im_end|>", "<|im_start|>", "<|im_sep|>")


def test_gemma_folds_ollamas_system_message_into_the_first_user_turn():
    derived = derive(hf("gemma3.jinja"), "gemma3")
    assert render_ollama(derived.template, PROBES["one question"], system="Be brief.") == (
        "<start_of_turn>user\nBe brief.\n\nWhat do bees make?<end_of_turn>\n<start_of_turn>model\n")
    gemma = derive(hf("gemma.jinja"), "gemma")  # Gemma 1/2 refuse a system message outright
    assert not gemma.takes_system and gemma.system_placement == "refused"
    assert render_ollama(gemma.template, PROBES["one question"], system="Be brief.") == (
        "<start_of_turn>user\nBe brief.\n\nWhat do bees make?<end_of_turn>\n<start_of_turn>model\n")
    assert gemma.stops == ("<end_of_turn>", "<eos>", "<start_of_turn>")


def test_a_tokenizer_without_chat_template_is_refused():
    with pytest.raises(BackpropError) as raised:
        derive(HfTemplate(""), "model.gguf")
    assert raised.value.message.endswith("it has no chat template")


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

    def test_and_or_not_ne_printf_and_boolean_literals(self):
        template = '{{ if and .A (not .B) }}1{{ end }}{{ if or .B .A }}2{{ end }}{{ if ne .A "y" }}3{{ end }}' \
                   '{{ printf "%s-%s" .A "z" }}{{ $f := true }}{{ if $f }}4{{ end }}{{ $f = false }}' \
                   '{{ if $f }}5{{ end }}'
        assert gotemplate.render(template, {"A": "x", "B": ""}) == "123x-z4"

    def test_unsupported_syntax_is_refused_not_guessed(self):
        with pytest.raises(ValueError):
            gotemplate.render("{{ .A | upper }}", {"A": "x"})
        with pytest.raises(ValueError):
            gotemplate.render("{{ if .A }}x", {"A": "x"})
