"""A conversation as the model's own chat template renders it, cut into what the template wrote and what the
messages said; from there, token ids and the assistant-only loss mask.

Two rules follow from the cut, and training and GGUF verification both apply them:

- Only the template's own text can yield control tokens. A message's content is tokenized with special tokens
  off, so data that says "<|im_end|>" is seven plain tokens, not the end of a turn (llama.cpp and Ollama read
  user text the same way). Structure and content are tokenized separately, so a token never spans the cut.
- Exactly the assistant contents, as the template renders them, plus the end-of-turn token the template
  writes right after each (with the spaces it puts before it, as Llama-2-chat's `' ' + eos_token` does: the
  model must write them to end its turn), carry loss: no role header, no prompt, no default system header.

How the cut is found, for any template, including ones that rewrite earlier turns (Qwen3 drops the
reasoning of all but the last assistant turn and adds an empty think block to the last; Llama 3 trims each
message): render the whole conversation once, then once more per message with that message's content
replaced by a probe character that no text uses. Everything before the first difference and after the last
one is the same in both renders, so the stretch in between is exactly what this message's content became in
the real render, however the template reshaped it. Template text that does not depend on the content (the
empty think block, a date header) stays outside. Rendering costs well under a millisecond per message.
"""

from collections.abc import Callable
from dataclasses import dataclass

from backpropagate.contract.chat_template import bounded_apply

PROBE = "\U0010fffd"  # a private-use character: no template trims, splits or matches it


@dataclass(frozen=True)
class Segment:
    text: str
    special: bool  # tokenized with special tokens on: template structure and end-of-turn tokens only
    trained: bool = False  # carries loss when the example trains on replies only


def render_segments(messages: list[dict], tokenizer) -> list[Segment]:
    """The rendered conversation as consecutive segments whose texts join to the template's output."""
    def render(conversation: list[dict]) -> str:
        return bounded_apply(tokenizer, conversation)

    text = render(messages)
    spans: list[tuple[int, int, bool]] = []
    for i, message in enumerate(messages):
        probed = render(messages[:i] + [{**message, "content": PROBE}] + messages[i + 1:])
        start = _common_prefix(text, probed)
        end = len(text) - min(_common_suffix(text, probed), len(text) - start)
        if end > start:  # an empty or dropped content leaves nothing to cut out
            spans.append((start, end, message["role"] == "assistant"))
    end_of_turn = _special_tokens(tokenizer)
    segments, cursor = [], 0
    for start, end, assistant in sorted(spans):
        start = max(start, cursor)  # a template mixing two messages' contents: the earlier one keeps the text
        if end <= start:
            continue
        segments.append(Segment(text[cursor:start], special=True))
        segments.append(Segment(text[start:end], special=False, trained=assistant))
        cursor = end
        gap = end
        while assistant and gap < len(text) and text[gap].isspace():
            gap += 1
        stop = next((token for token in end_of_turn if text.startswith(token, gap)), None) if assistant else None
        if stop:
            segments.append(Segment(text[end:gap] + stop, special=True, trained=True))
            cursor = gap + len(stop)
    segments.append(Segment(text[cursor:], special=True))
    return [segment for segment in segments if segment.text]


def encode(segments: list[Segment], tokenize: Callable[[str, bool], list[int]]) -> tuple[list[int], list[bool]]:
    """Token ids of the segments, each tokenized alone by ``tokenize(text, special)``, and which are trained."""
    ids, trained = [], []
    for segment in segments:
        piece = tokenize(segment.text, segment.special)
        ids += piece
        trained += [segment.trained] * len(piece)
    return ids, trained


def hf_tokenize(tokenizer) -> Callable[[str, bool], list[int]]:
    """``tokenize`` for ``encode`` through a transformers tokenizer (which parses special-token text by default)."""
    return lambda text, special: tokenizer(text, add_special_tokens=False,
                                           split_special_tokens=not special)["input_ids"]


def _special_tokens(tokenizer) -> list[str]:
    """Texts of the tokenizer's special tokens, longest first, so a longer one wins over its prefix."""
    texts = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    return sorted(texts, key=len, reverse=True)


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by binary search over slice comparisons (which run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if a[:mid] == b[:mid] else (low, mid - 1)
    return low


def _common_suffix(a: str, b: str) -> int:
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if a[len(a) - mid:] == b[len(b) - mid:] else (low, mid - 1)
    return low
