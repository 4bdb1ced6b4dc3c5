"""The Ollama template and stop tokens for a model, derived from the tokenizer's own chat template.

Ollama guesses a prompt format from the GGUF and falls back to a bare prompt when it
cannot: the commonest cause of gibberish or endless answers after fine-tuning. Here no
family is recognised by name: the tokenizer's chat template is rendered (as transformers
does) on sentinel conversations, the text it writes around each message is read off
(``readoff``), a Go template is built from those pieces (``gobuild``), and it is accepted
only when it renders every probe conversation, sentinel and plain, with thinking unset, on
and off, to the very same prompt (our Go-template renderer, ``gotemplate``, executes it as
Ollama would). Anything else is refused, saying what could not be matched.
"""

from dataclasses import dataclass, replace

from backpropagate.contract.errors import BackpropError
from backpropagate.ollama import gobuild
from backpropagate.contract.chat_template import HfTemplate, TemplateRaised
from backpropagate.ollama.probes import (
    CONTINUE_AFTER_REASONING,
    PROBES,
    REASONING_PROBE,
    SENTINEL_PROBES,
    Probe,
    render_hf,
    render_ollama,
)
from backpropagate.ollama.readoff import Pieces, Unmatched, read_thinking

__all__ = ["PROBES", "OllamaTemplate", "derive", "mismatches", "probes_for", "render_hf", "render_ollama"]

# Names for the templates people know, by a marker of their turns; a label for messages and the
# history, not a way of choosing the template.
LABELS = (("<|start_header_id|>", "llama3"), ("<<SYS>>", "llama2"), ("[INST]", "mistral"),
          ("<|im_start|>", "chatml"), ("<start_of_turn>", "gemma"), ("<|end|>\n<|user|>", "phi3"),
          ("</s>\n<|user|>", "zephyr"),
          ("<|start_of_role|>", "granite"), ("<|START_OF_TURN_TOKEN|>", "command-r"), ("<｜User｜>", "deepseek"))


@dataclass(frozen=True)
class OllamaTemplate:
    family: str
    template: str  # Ollama Go template text
    stops: tuple[str, ...]
    probes_checked: int = 0
    takes_system: bool = True  # False: the tokenizer's template refuses a system message
    system_placement: str = "first"  # first (its own turn or the first user's), last, last-final, refused
    thinks: bool = False  # True: the template follows Ollama's think option (.Think)
    reasons: bool = False  # True: it writes an answer's reasoning (.Thinking): Ollama takes the model as thinking
    default_system: str = ""


def derive(hf: HfTemplate, source: str) -> OllamaTemplate:
    """The Ollama template that renders every probe exactly as ``hf`` does, or INPUT_CHAT_TEMPLATE_UNKNOWN."""
    if not hf.source.strip():
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source, reason="it has no chat template")
    try:
        pieces, on, off = read_thinking(hf)
    except Unmatched as exc:
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source, reason=str(exc)) from None
    except TemplateRaised as exc:
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source,
                            reason=f"it refuses a plain user/assistant conversation ({exc})") from None
    template, checked, failure = _verified(hf, pieces, on, off)
    if failure and gobuild.thinks(pieces, on):
        # Thinking on or off cannot be matched: follow the template's default only.
        pieces, on, off = replace(pieces, generation_on=pieces.generation, generation_off=pieces.generation), None, None
        template, checked, fallback_failure = _verified(hf, pieces)
        failure = failure if fallback_failure else None
    if failure:
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source, reason=failure)
    stops = gobuild.stops(pieces, hf.special_tokens.get("eos_token", ""))
    # A model that writes its answer's header itself, with tokens the template writes between turns,
    # gives answers in several parts (gpt-oss: analysis, then final): stops would end it after the first.
    between = list(dict.fromkeys(t for t in gobuild.own_tokens(pieces) if _between_turns(pieces, t)))
    if between:
        raise BackpropError("INPUT_CHAT_TEMPLATE_UNKNOWN", source=source, reason=(
            f"the model writes its answer's header itself (after the generation prompt {pieces.generation!r}), "
            f"with {', '.join(between)}, which the template also writes between turns: an answer in several "
            "parts that one template and its stops cannot frame"))
    return OllamaTemplate(_label(pieces), template, stops,
                          checked, takes_system=pieces.system != "refused", system_placement=pieces.system,
                          thinks=gobuild.thinks(pieces, on), reasons=_reasons(pieces, on, off),
                          default_system=pieces.default_system)


def _verified(hf: HfTemplate, pieces: Pieces, on: Pieces | None = None,
              off: Pieces | None = None) -> tuple[str, int, str | None]:
    """The Go template of ``pieces``, how many probes it rendered as ``hf`` does, and the first failure."""
    template = gobuild.build(pieces, on, off)
    checked = 0
    for probe in probes_for(hf, pieces.system != "refused", gobuild.thinks(pieces, on), _reasons(pieces, on, off)):
        try:
            expected = render_hf(hf, probe.messages, probe.think)
        except TemplateRaised as exc:
            return template, checked, f"it refuses the probe '{probe.name}' ({exc})"
        got = render_ollama(template, probe.messages, think=probe.think)
        if got != expected:
            return template, checked, _difference(probe, expected, got)
        checked += 1
    return template, checked, None


def probes_for(hf: HfTemplate, takes_system: bool, thinks: bool, reasons: bool = False) -> list[Probe]:
    """Every conversation the derived template must render as ``hf`` does."""
    conversations = {**SENTINEL_PROBES, **PROBES}
    if not takes_system:
        conversations = {name: m for name, m in conversations.items() if m[0]["role"] != "system"}
    if "</think>" in hf.source and _drops_reasoning(hf):
        conversations["earlier reasoning"] = REASONING_PROBE
    if reasons:
        conversations["continue after reasoning"] = CONTINUE_AFTER_REASONING
    settings = (None, True, False) if thinks else (None,)
    return [Probe(name + ("" if think is None else f", thinking {'on' if think else 'off'}"), messages, think,
                  plain=name in PROBES)
            for think in settings for name, messages in conversations.items()]


def _drops_reasoning(hf: HfTemplate) -> bool:
    """Whether the template drops an earlier answer's reasoning (DeepSeek-R1, Qwen3 do); one that keeps
    it writes what it is given, as Ollama writes the Content it is given."""
    try:
        return REASONING_PROBE[1]["thinking"] not in render_hf(hf, REASONING_PROBE)
    except TemplateRaised:
        return False


def mismatches(hf: HfTemplate, template: str) -> tuple[list[str], int]:
    """Plain probes whose two renderings differ, and how many probes the tokenizer's template accepted."""
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


def _difference(probe: Probe, expected: str, got: str) -> str:
    """Where the two prompts part, in a few characters of each."""
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    start = max(0, at - 20)
    content = " (it depends on the content)" if probe.plain else ""
    return (f"the conversation '{probe.name}' comes out differently{content}"
            f": the template writes {expected[start:at + 30]!r} where the derived one writes {got[start:at + 30]!r}")


def _reasons(pieces: Pieces, on: Pieces | None, off: Pieces | None) -> bool:
    return any(gobuild.reasons(p) for p in (pieces, on, off) if p)


def _between_turns(pieces: Pieces, token: str) -> bool:
    return any(token in text for text in (pieces.assistant_suffix, pieces.user_prefix, pieces.user_suffix))


def _label(pieces: Pieces) -> str:
    turns = pieces.system_first + pieces.user_prefix + pieces.assistant_suffix + pieces.first_user
    return next((name for marker, name in LABELS if marker in turns), "derived")
