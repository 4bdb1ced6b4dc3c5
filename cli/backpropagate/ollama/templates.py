"""The Ollama template and stop tokens for a model, derived from the tokenizer's own chat template.

Ollama guesses a prompt format from the GGUF and falls back to a bare prompt when it
cannot: the commonest cause of gibberish or endless answers after fine-tuning. Here
the tokenizer's chat template is rendered (as transformers does) on probe
conversations; a family's Ollama Go template is accepted only when it renders every
probe to the very same prompt (our Go-template renderer, ``gotemplate``, executes it
as Ollama would: system messages collated into ``.System``, all messages in
``.Messages``, a final assistant message continued rather than closed). Families:
ChatML (Qwen 2/2.5/3, with Qwen 2.5's default system prompt and Qwen 3's empty think
block read from the template itself), Llama 3, Phi-3, Zephyr, Gemma and Mistral
(v0.1/v0.2 form).
"""

from collections.abc import Callable
from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError
from backpropagate.ollama import gotemplate
from backpropagate.ollama.hf_template import HfTemplate, TemplateRaised

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one sentence."}
U1 = {"role": "user", "content": "What do bees make?"}
A1 = {"role": "assistant", "content": "Honey, from nectar.\nThey store it in wax combs."}
U2 = {"role": "user", "content": "And wasps?"}
PREFIX = {"role": "assistant", "content": "Wasps make"}

# Conversations both renderings must agree on: with and without a system message, several
# turns, a question awaiting an answer, and an answer the model is to continue.
PROBES: dict[str, list[dict]] = {
    "one question": [U1],
    "system and question": [SYSTEM, U1],
    "system, several turns": [SYSTEM, U1, A1, U2],
    "continue an answer": [U1, A1, U2, PREFIX],
    "system, continue an answer": [SYSTEM, U1, A1, U2, PREFIX],
}


@dataclass(frozen=True)
class OllamaTemplate:
    family: str
    template: str  # Ollama Go template text
    stops: tuple[str, ...]
    probes_checked: int = 0
    takes_system: bool = True  # False: the tokenizer's template refuses a system message


def render_hf(hf: HfTemplate, messages: list[dict]) -> str:
    """The prompt transformers would build: a generation prompt after a user turn, a continuation after an
    assistant turn; less the BOS text that llama.cpp adds as a token."""
    final_assistant = messages[-1]["role"] == "assistant"
    return hf.without_bos(hf.render(messages, add_generation_prompt=not final_assistant,
                                    continue_final_message=final_assistant))


def render_ollama(template: str, messages: list[dict], system: str = "") -> str:
    """The prompt Ollama builds from ``template`` for a chat request (``system``: the model's SYSTEM)."""
    if system and not any(message["role"] == "system" for message in messages):
        messages = [{"role": "system", "content": system}] + messages
    collated: list[dict] = []
    for message in messages:  # Ollama merges consecutive messages of one role
        if collated and collated[-1]["role"] == message["role"]:
            collated[-1] = {**collated[-1], "content": collated[-1]["content"] + "\n\n" + message["content"]}
        else:
            collated.append(dict(message))
    system_text = "\n\n".join(m["content"] for m in collated if m["role"] == "system")
    values = {"System": system_text, "Prompt": "", "Response": "",
              "Messages": [{"Role": m["role"], "Content": m["content"]} for m in collated]}
    return gotemplate.render(template, values)


def mismatches(hf: HfTemplate, template: str) -> tuple[list[str], int]:
    """Probes whose two renderings differ, and how many probes the tokenizer's template accepted."""
    differing, accepted = [], 0
    for name, messages in PROBES.items():
        try:
            expected = render_hf(hf, messages)
        except TemplateRaised:
            continue
        accepted += 1
        if render_ollama(template, messages) != expected:
            differing.append(name)
    return differing, accepted


def derive(hf: HfTemplate, source: str) -> OllamaTemplate:
    """The first family whose Ollama template renders every probe exactly as ``hf`` does."""
    if not hf.source.strip():
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source, reason="it has no chat template")
    for family in FAMILIES:
        for template in family.candidates(hf):
            differing, accepted = mismatches(hf, template)
            if not differing and accepted >= 2 and _accepts(hf, "one question") and _accepts(hf, "continue an answer"):
                return OllamaTemplate(family.name, template, family.stops, accepted,
                                      takes_system=_accepts(hf, "system and question"))
    raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source,
                        reason="it renders conversations unlike ChatML, Llama 3, Phi-3, Zephyr, Gemma or Mistral")


def _accepts(hf: HfTemplate, probe: str) -> bool:
    try:
        render_hf(hf, PROBES[probe])
        return True
    except TemplateRaised:
        return False


@dataclass(frozen=True)
class Family:
    name: str
    stops: tuple[str, ...]
    candidates: Callable[[HfTemplate], list[str]]


def _turns(name: str, opening: str, closing: str, stops: tuple[str, ...]) -> Family:
    """A family where every message is ``opening`` (with its role) + content + ``closing``."""

    def candidates(hf: HfTemplate) -> list[str]:
        system_open = opening.format(role="system")
        prefix = _system_prefix(hf, turns_template(opening, closing), system_open)
        default = _default_system(hf, turns_template(opening, closing, prefix), system_open, closing)
        think = _final_assistant_prefix(hf, turns_template(opening, closing, prefix, default))
        return [turns_template(opening, closing, prefix, default, think)]

    return Family(name, stops, candidates)


def turns_template(opening: str, closing: str, system_prefix: str = "", default_system: str = "",
                   final_prefix: str = "") -> str:
    """The Go template of a turn-based family, in the form of Ollama's library templates."""
    system_open, user_open, assistant_open = (opening.format(role=role) for role in ("system", "user", "assistant"))
    default = f"{{{{ else }}}}{system_open}{default_system}{closing}" if default_system else ""
    prefix = f"{{{{ if $last }}}}{final_prefix}{{{{ end }}}}" if final_prefix else ""
    return (f"{{{{- if .System }}}}{system_open}{system_prefix}{{{{ .System }}}}{closing}{default}{{{{ end }}}}"
            "{{ range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
            f'{{{{ if eq .Role "user" }}}}{user_open}{{{{ .Content }}}}{closing}'
            f'{{{{ else if eq .Role "assistant" }}}}{assistant_open}{prefix}{{{{ .Content }}}}'
            f"{{{{ if not $last }}}}{closing}{{{{ end }}}}"
            f'{{{{ end }}}}{{{{ if and (ne .Role "assistant") $last }}}}{assistant_open}{{{{ end }}}}'
            "{{ end }}")


def _system_prefix(hf: HfTemplate, plain: str, system_open: str) -> str:
    """Text the template puts before every system message (Llama 3.1: its knowledge-cutoff header)."""
    messages = PROBES["system and question"]
    try:
        text = render_hf(hf, messages)
    except TemplateRaised:
        return ""
    rest = render_ollama(plain, messages)[len(system_open):]
    if text.startswith(system_open) and text.endswith(rest) and len(text) > len(system_open) + len(rest):
        prefix = text[len(system_open):len(text) - len(rest)]
        return prefix if "{{" not in prefix else ""
    return ""


def _default_system(hf: HfTemplate, plain: str, system_open: str, closing: str) -> str:
    """The system prompt the template puts in when the conversation has none (Qwen 2.5 does)."""
    try:
        text = render_hf(hf, PROBES["one question"])
    except TemplateRaised:
        return ""
    ours = render_ollama(plain, PROBES["one question"])
    head = text[:-len(ours)] if ours and text.endswith(ours) else ""
    if head.startswith(system_open) and head.endswith(closing) and "{{" not in head:
        return head[len(system_open):len(head) - len(closing)]
    return ""


def _final_assistant_prefix(hf: HfTemplate, template: str) -> str:
    """Text the template puts before an answer being continued (Qwen 3: an empty think block)."""
    messages = PROBES["continue an answer"]
    try:
        text = render_hf(hf, messages)
    except TemplateRaised:
        return ""
    ours = render_ollama(template, messages)
    content = messages[-1]["content"]
    stem = ours[:-len(content)]
    if text.startswith(stem) and text.endswith(content) and "{{" not in text:
        return text[len(stem):len(text) - len(content)]
    return ""


# Gemma and Mistral templates take no system message (Gemma 3 folds it into the first user turn);
# these fold Ollama's SYSTEM into the first user turn the way Gemma 3 does.
GEMMA = ('{{- range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
         '{{ if eq .Role "user" }}<start_of_turn>user\n{{ if and $.System (eq $i 1) }}{{ $.System }}\n\n{{ end }}'
         '{{ .Content }}<end_of_turn>\n'
         '{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}'
         '{{ if not $last }}<end_of_turn>\n{{ end }}'
         '{{ end }}{{ if and (ne .Role "assistant") $last }}<start_of_turn>model\n{{ end }}{{ end }}')
MISTRAL = ('{{- range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
           '{{ if eq .Role "user" }}[INST] {{ if and $.System (eq $i 1) }}{{ $.System }}\n\n{{ end }}'
           '{{ .Content }} [/INST]'
           '{{ else if eq .Role "assistant" }}{{ .Content }}{{ if not $last }}</s>{{ end }}'
           '{{ end }}{{ end }}')

FAMILIES: tuple[Family, ...] = (
    _turns("chatml", "<|im_start|>{role}\n", "<|im_end|>\n", ("<|im_start|>", "<|im_end|>")),
    _turns("llama3", "<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>",
           ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    _turns("phi3", "<|{role}|>\n", "<|end|>\n", ("<|end|>", "<|system|>", "<|user|>", "<|assistant|>")),
    _turns("zephyr", "<|{role}|>\n", "</s>\n", ("<|system|>", "</s>", "<|user|>", "<|assistant|>")),
    Family("gemma", ("<start_of_turn>", "<end_of_turn>"), lambda hf: [GEMMA]),
    # Mistral v0.1 closes an answer with </s>, v0.2 with "</s> ".
    Family("mistral", ("[INST]", "[/INST]"), lambda hf: [MISTRAL, MISTRAL.replace("</s>{{", "</s> {{")]),
)
