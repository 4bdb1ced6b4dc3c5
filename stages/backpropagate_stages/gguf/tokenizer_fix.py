"""Where the converted GGUF's tokenizer metadata must differ from what the converter wrote, read from the model's
own tokenizer files (so an export without verification is corrected too).

For a Llama whose folder has tokenizer.json but no tokenizer.model (Gemma 3 as npm and some hubs ship it),
llama.cpp's converter takes gguf-py's LlamaHfVocab path, which loses two things:

- Token types. It types a token CONTROL only when the tokenizer names it bos, eos, unk, pad, mask or an extra
  special token: Gemma 3's ``<start_of_turn>`` (and ``<eos>``, not its eos) come out NORMAL, and llama.cpp then
  reads the template's ``<start_of_turn>`` as ``<``, ``start``, ``_``, ... Its other added tokens (``<table>``,
  ``<unused0>``, newline runs), which the tokenizer always keeps whole, come out NORMAL too, and are split.
- Scores. Every token gets -1000, a placeholder, and llama.cpp's SentencePiece tokenizer, which merges the
  highest-scoring pair first, then merges from the left instead of in the BPE merge order (" булок" became
  " було" + "к", not " бу" + "лок"). A token's score becomes minus the rank of the first merge that makes it.

The converter has no switch for either, so the stage rewrites them in the file it just wrote: both are
fixed-size arrays, overwritten in place (header.py), and nothing else in the file moves.

Also ``add_space_prefix = false`` where the model's tokenizer adds no leading space and the converter left the
key out: for a SentencePiece vocabulary llama.cpp then assumes true, and every prompt would gain a space.
"""

import json
import logging
from pathlib import Path

from backpropagate.contract import gguf_header as header

log = logging.getLogger("backpropagate.gguf")

# llama.cpp's token types (gguf-py's TokenType), fixed by the GGUF format.
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4
TOKENS, TYPES, SCORES, MODEL = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores",
                                "tokenizer.ggml.model")


def correct_vocabulary(gguf_file: Path, model_dir: Path) -> list[str]:
    """Rewrite, in place, the token types and scores that do not match the model's tokenizer; say what changed."""
    tokenizer_json = _tokenizer_json(model_dir)
    fields = header.read(gguf_file, (TOKENS, TYPES, SCORES, MODEL))
    tokens, types = fields[TOKENS] or [], fields[TYPES] or []
    changes = []
    retyped = _types(tokens, types, added_tokens(model_dir, tokenizer_json))
    if retyped:
        header.patch(gguf_file, TYPES, retyped)
        for kind, name in ((CONTROL, "control"), (USER_DEFINED, "user-defined")):
            texts = [tokens[i] for i, new in retyped.items() if new == kind]
            if texts:
                changes.append(f"{len(texts)} tokens retyped {name} ({', '.join(texts[:5])}"
                               f"{', ...' if len(texts) > 5 else ''})")
    scores = fields[SCORES]
    if fields[MODEL] == "llama" and scores and len(set(scores)) == 1 and tokenizer_json is not None:
        ranked = merge_scores(tokenizer_json, len(scores))
        if ranked is not None:
            header.replace_array(gguf_file, SCORES, ranked)
            changes.append("scores set from the BPE merge order")
    for change in changes:
        log.info("corrected the converted vocabulary: %s", change)
    return changes


def _types(tokens: list[str], types: list[int], added: dict[int, tuple[str, bool]]) -> dict[int, int]:
    """id -> the type each added token needs: CONTROL if special (read from template text only), else
    USER_DEFINED (always kept whole, as the tokenizer does). Only NORMAL and USER_DEFINED tokens change: UNKNOWN,
    BYTE and UNUSED mean something of their own to llama.cpp, and a CONTROL token the converter chose is kept."""
    retyped = {}
    for i, (text, special) in added.items():
        if i >= len(tokens) or tokens[i] != text:
            continue  # spelt differently in the GGUF: left to verification, which names it
        if special and types[i] in (NORMAL, USER_DEFINED):
            retyped[i] = CONTROL
        # llama.cpp turns "▁" back into a space only in NORMAL tokens: "▁▁" must stay NORMAL to print as spaces.
        elif not special and types[i] == NORMAL and "▁" not in text:
            retyped[i] = USER_DEFINED
    return retyped


def merge_scores(tokenizer_json: dict, count: int) -> list[float] | None:
    """Scores under which merging the highest-scoring pair first follows the BPE merge order; None if the
    tokenizer is not BPE. Tokens no merge makes (characters, added tokens) score below every merge."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or not model.get("merges"):
        return None
    vocab, merges = model["vocab"], model["merges"]
    scores = [-float(len(merges) + 1)] * count
    for rank in range(len(merges) - 1, -1, -1):  # backwards, so the first merge making a token has the last word
        left, right = merges[rank] if isinstance(merges[rank], list) else merges[rank].split(" ", 1)
        token = vocab.get(left + right)
        if token is not None and token < count:
            scores[token] = -float(rank)
    return scores


def needs_no_space_prefix(gguf_file: Path, model_dir: Path) -> bool:
    return header.read(gguf_file, ("tokenizer.ggml.add_space_prefix",))["tokenizer.ggml.add_space_prefix"] \
        is None and not hf_adds_space(model_dir)


def added_tokens(model_dir: Path, tokenizer_json: dict | None) -> dict[int, tuple[str, bool]]:
    """id -> (text, special) of the tokenizer's added tokens."""
    if tokenizer_json is not None:
        return {token["id"]: (token["content"], bool(token.get("special"))) for token in
                tokenizer_json.get("added_tokens", [])}
    config = model_dir / "tokenizer_config.json"
    decoder = json.loads(config.read_text(encoding="utf-8")).get("added_tokens_decoder", {}) if config.exists() else {}
    return {int(i): (token["content"], bool(token.get("special"))) for i, token in decoder.items()}


def hf_adds_space(model_dir: Path) -> bool:
    """Whether the model's own tokenizer puts a word-start marker before the first word.

    Read from tokenizer.json (a Prepend normalizer, or a Metaspace pre-tokenizer that
    prepends) so that an export without verification need not import transformers.
    """
    tokenizer_json = _tokenizer_json(model_dir)
    if tokenizer_json is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        first = tokenizer.convert_ids_to_tokens(tokenizer("Hello", add_special_tokens=False)["input_ids"])[0]
        return first.startswith("▁")
    nodes = list(_walk(tokenizer_json.get("normalizer"))) + list(_walk(tokenizer_json.get("pre_tokenizer")))
    return any(node.get("type") == "Prepend" or
               (node.get("type") == "Metaspace" and node.get("prepend_scheme", "always") != "never")
               for node in nodes)


def _tokenizer_json(model_dir: Path) -> dict | None:
    path = model_dir / "tokenizer.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
