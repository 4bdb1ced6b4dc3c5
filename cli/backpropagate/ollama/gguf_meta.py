"""A GGUF's metadata for Ollama registration: every key-value of its header, and special tokens by id.

The header is read by the contract's one GGUF reader (``contract/gguf_header.py``); a file it cannot
read is ``INPUT_GGUF_INVALID`` with the reason.
"""

from pathlib import Path
from typing import Any

from backpropagate.contract import gguf_header
from backpropagate.contract.errors import BackpropError


def read_metadata(path: Path) -> dict[str, Any]:
    """Every key-value of the GGUF header, arrays as lists."""
    try:
        return gguf_header.read(path)
    except gguf_header.GgufHeaderError as exc:
        raise BackpropError("INPUT_GGUF_INVALID", path=path, reason=str(exc)) from None


def token_text(metadata: dict[str, Any], key: str) -> str:
    """The text of a special token named by id (``tokenizer.ggml.bos_token_id``), or "" when absent."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    index = metadata.get(key)
    return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else ""
