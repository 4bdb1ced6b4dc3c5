"""A model's tokenizer as its own tokenizer.json splits text, for every stage that turns text into ids.

transformers 5 builds some tokenizers' text pipeline from their class instead of reading it from tokenizer.json.
For Llama 2 (tokenizer_class LlamaTokenizer, legacy) the file's normalizer, prepend "▁" then turn spaces into "▁",
becomes a Metaspace pre-tokenizer that skips the prepend when the text already starts with a space: " Hello" is
"▁Hello" where Llama 2's own tokenizer, SentencePiece and llama.cpp all make "▁" + "▁Hello". A model tuned on
the first reads its template's " [/INST]" and every text that starts with a space differently from how it was
pretrained, and from how its GGUF reads them. Training, evaluation and GGUF verification load the tokenizer here,
so all three see the ids the model's files define.
"""

import json
import logging

log = logging.getLogger("backpropagate.tokenizer")

# What decides the ids: the added tokens and the model come from tokenizer.json in any case.
PARTS = ("normalizer", "pre_tokenizer")


def load(name: str):
    """``AutoTokenizer.from_pretrained(name)`` with tokenizer.json's normalizer and pre-tokenizer kept."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    restored = keep_shipped_pipeline(tokenizer, _tokenizer_json(name))
    if restored:
        log.info("kept tokenizer.json's %s (transformers had replaced them)", " and ".join(restored))
    return tokenizer


def keep_shipped_pipeline(tokenizer, tokenizer_json: str | None) -> list[str]:
    """Put back the parts of ``tokenizer_json``'s pipeline that the loaded fast tokenizer replaced; name them."""
    if tokenizer_json is None or not getattr(tokenizer, "is_fast", False):
        return []
    from tokenizers import Tokenizer

    shipped = Tokenizer.from_file(tokenizer_json)
    backend = tokenizer.backend_tokenizer
    wanted, loaded = json.loads(shipped.to_str()), json.loads(backend.to_str())
    restored = [part for part in PARTS if wanted.get(part) != loaded.get(part)]
    for part in restored:
        setattr(backend, part, getattr(shipped, part))
    return restored


def _tokenizer_json(name: str) -> str | None:
    """The tokenizer.json that ``from_pretrained(name)`` read: in a local folder, or in the Hub cache."""
    from transformers.utils import cached_file

    try:
        return cached_file(name, "tokenizer.json", _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except OSError:
        return None
