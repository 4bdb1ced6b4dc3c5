"""Reading a chat template's pieces off its renderings of sentinel conversations.

Each sentinel probe is rendered with the tokenizer's own template; cutting the prompt at the
sentinel contents leaves the text the template writes around each message. From those gaps
come the per-role prefixes and suffixes, the generation prompt, the text before an answer being
continued (and around its reasoning), and where a system message goes: its own turn or merged
into the first user turn (both read as "first": the text before the first user message
changes), merged into the last user turn (Mistral's newer [INST] forms, only while that turn
is the final message in some of them), or refused. A conversation whose gaps are not the same
from turn to turn raises ``Unmatched``, naming what could not be matched. All of it is read with
thinking unset, on and off (``enable_thinking``), which may change any piece.
"""

import os
import re
from dataclasses import dataclass, replace

from backpropagate.contract.chat_template import HfTemplate, TemplateRaised
from backpropagate.ollama.probes import CONTINUE_AFTER_REASONING, SENTINEL_PROBES, render_hf

# Special tokens as templates write them: <|eot_id|>, <｜User｜>, <start_of_turn>, </s>, [INST].
SPECIAL = re.compile(r"<\|[^<>|]*\|>|<｜[^<>]*?｜>|</?[A-Za-z_][A-Za-z0-9_.▁-]*>|\[/?[A-Z][A-Z_]*\]")


class Unmatched(Exception):
    """What in the template could not be matched by a linear Ollama template."""


@dataclass(frozen=True)
class Pieces:
    first_user: str  # before the first user message's content, when there is no system message
    user_prefix: str  # before every later user message's content (after the assistant suffix)
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str  # ends an assistant turn that is not the final message
    final_prefix: str  # before an assistant message that the model is to continue
    generation: str  # after the user suffix of a final user message: the generation prompt
    generation_on: str  # the same with thinking asked for, where only the generation prompt changes with it
    generation_off: str  # and with thinking turned off
    system: str  # first | last | last-final | refused
    system_first: str  # before the system content when it goes with the first user message
    system_later: str  # before it when it goes with a later user message (system "last")
    system_close: str  # between the system content and the user's
    default_system: str = ""  # the system prompt the template writes when there is none
    # An answer being continued after its reasoning: final_prefix is reasoning_head + (reasoning_open,
    # the reasoning, reasoning_close, or else the rest of final_prefix); empty where not matched.
    reasoning_head: str = ""
    reasoning_open: str = ""
    reasoning_close: str = ""


def read_thinking(hf: HfTemplate) -> tuple[Pieces, Pieces | None, Pieces | None]:
    """The pieces with thinking unset, and with it on and off where they differ in more than the
    generation prompt (a system prompt of their own, say); both None where thinking on or off cannot be
    matched, and the Ollama template then follows the template's default only."""
    default = read_off(hf)
    try:
        on, off = read_off(hf, True), read_off(hf, False)
    except (Unmatched, TemplateRaised):
        return default, None, None
    if _same_but_generation(default, on) and _same_but_generation(default, off):
        return replace(default, generation_on=on.generation, generation_off=off.generation), None, None
    return default, on, off


def read_off(hf: HfTemplate, think: bool | None = None) -> Pieces:
    """The pieces of ``hf``, or ``Unmatched`` (``TemplateRaised`` when it refuses a plain conversation)."""
    head, tail = _gaps(hf, "one turn", think)
    two = _gaps(hf, "two turns", think)
    if two[0] != head:
        raise Unmatched("the text before the first user message changes with the number of turns")
    if two[-1] != tail:
        raise Unmatched("the generation prompt changes with the number of turns")
    between_ua, between_au = two[1], two[2]
    if _gaps(hf, "three turns", think) != [head, between_ua, between_au, between_ua, between_au, tail]:
        raise Unmatched("the text between turns changes from one turn to the next")
    cont = _gaps(hf, "continue", think)
    if cont[:3] != [head, between_ua, between_au]:
        raise Unmatched("earlier turns change when the final message is an answer being continued")

    # Between an answer and the next question: the assistant suffix (the special token that closes
    # the turn and the whitespace after it), then the user prefix; without such a token, the user
    # prefix is what the text before the first question ends with too.
    closing = SPECIAL.match(between_au)
    if closing:
        split = len(between_au[:closing.end()] + _leading_space(between_au[closing.end():]))
    else:
        split = _snap_right(between_au, len(between_au) - _common_suffix(head, between_au))
    assistant_suffix, user_prefix = between_au[:split], between_au[split:]
    # The user suffix: by symmetry the assistant's when every text after a user message starts with it.
    after_user = (between_ua, tail, cont[3])
    if assistant_suffix and all(text.startswith(assistant_suffix) for text in after_user):
        user_suffix = assistant_suffix
    else:
        user_suffix = between_ua[:_snap_left(between_ua, _common_prefix(*after_user))]
    generation = tail[len(user_suffix):]
    system, system_first, system_later, system_close = _system(hf, head, tail, between_ua, between_au,
                                                                assistant_suffix, think)
    default = ""
    if system != "refused" and head.startswith(system_first) and head.endswith(system_close):
        default = head[len(system_first):len(head) - len(system_close)]
    final_prefix = cont[3][len(user_suffix):]
    return Pieces(head, user_prefix, user_suffix, between_ua[len(user_suffix):], assistant_suffix, final_prefix,
                  generation, generation, generation, system, system_first, system_later, system_close, default,
                  *_reasoning(hf, think, [head, between_ua, between_au], user_suffix, final_prefix))


def _gaps(hf: HfTemplate, probe: str, think: bool | None = None) -> list[str]:
    """The text before, between and after the contents of a sentinel probe's messages."""
    messages = SENTINEL_PROBES[probe]
    return _cut(render_hf(hf, messages, think), messages)


def _cut(text: str, messages: list[dict]) -> list[str]:
    gaps, position = [], 0
    for message in messages:
        at = text.find(message["content"], position)
        if at < 0:
            raise Unmatched(f"the {message['role']} message is not written as given (or not where it was)")
        gaps.append(text[position:at])
        position = at + len(message["content"])
    return gaps + [text[position:]]


def _reasoning(hf: HfTemplate, think: bool | None, earlier: list[str], user_suffix: str,
               final_prefix: str) -> tuple[str, str, str]:
    """How the template writes the reasoning of an answer being continued (Qwen3:
    ``<think>\n...\n</think>\n\n``), as (head, opening, closing), where its opening tag stands apart."""
    try:
        text = render_hf(hf, CONTINUE_AFTER_REASONING, think)
        gaps = _cut(text, CONTINUE_AFTER_REASONING[:3] + [{"role": "reasoning", "content": "qqreasonqq"},
                                                          CONTINUE_AFTER_REASONING[3]])
    except (TemplateRaised, Unmatched):
        return "", "", ""
    if gaps[:3] != earlier or not gaps[3].startswith(user_suffix) or gaps[5]:
        return "", "", ""
    before, after = gaps[3][len(user_suffix):], gaps[4]
    tags = [m for m in SPECIAL.finditer(before) if "think" in m.group()]
    head = before[:tags[-1].start()] if tags else ""
    if not tags or not final_prefix.startswith(head) or not after.strip():
        return "", "", ""
    return head, before[len(head):], after


def _same_but_generation(a: Pieces, b: Pieces) -> bool:
    keep = {"generation": "", "generation_on": "", "generation_off": ""}
    return replace(a, **keep) == replace(b, **keep)


def _system(hf: HfTemplate, head: str, tail: str, between_ua: str, between_au: str,
            assistant_suffix: str, think: bool | None) -> tuple[str, str, str, str]:
    """Where a system message goes: (placement, text before it first / later, text after it)."""
    system = SENTINEL_PROBES["system, one turn"][0]["content"]
    try:
        text = render_hf(hf, SENTINEL_PROBES["system, one turn"], think)
    except TemplateRaised:
        # Ollama's SYSTEM is then put before the first user message, as Gemma 3 does.
        return "refused", head, "", "\n\n"
    if system not in text:  # left out (Phi-3 mini): Ollama's SYSTEM goes where a refused one goes
        return "refused", head, "", "\n\n"
    first, close, after = _cut(text, SENTINEL_PROBES["system, one turn"])
    if after != tail:
        raise Unmatched("a system message changes the generation prompt")
    messages = SENTINEL_PROBES["system, two turns"]
    text = render_hf(hf, messages, think)
    if text.find(system) < text.find(messages[1]["content"]):
        if _cut(text, messages) != [first, close, between_ua, between_au, tail]:
            raise Unmatched("with a system message, the turns after the first change")
        return "first", first, "", close
    order = [messages[1], messages[2], messages[0], messages[3]]
    gaps = _cut(text, order)
    if gaps[:2] != [head, between_ua] or gaps[3:] != [close, tail] or not gaps[2].startswith(assistant_suffix):
        raise Unmatched("a system message goes neither with the first user message nor with the last")
    later = gaps[2][len(assistant_suffix):]
    continued = render_hf(hf, SENTINEL_PROBES["system, continue"], think)
    return ("last" if system in continued else "last-final"), first, later, close


def _leading_space(text: str) -> str:
    return text[:len(text) - len(text.lstrip())]


def _common_prefix(*texts: str) -> int:
    return len(os.path.commonprefix(list(texts)))


def _common_suffix(a: str, b: str) -> int:
    return _common_prefix(a[::-1], b[::-1])


def _snap_left(text: str, index: int) -> int:
    """``index``, moved to the start of a special token it would cut."""
    for match in SPECIAL.finditer(text):
        if match.start() < index < match.end():
            return match.start()
    return index


def _snap_right(text: str, index: int) -> int:
    """``index``, moved to the end of a special token it would cut."""
    for match in SPECIAL.finditer(text):
        if match.start() < index < match.end():
            return match.end()
    return index
