"""Reading a GGUF file's metadata (its key-value header) in pure Python, without gguf-py or numpy.

The layout (GGUF versions 2 and 3): magic ``GGUF``, version (uint32), tensor count
and key-value count (uint64), then the typed key-values. Only the key-values are
read; the tensor infos and data that follow are never touched, so a multi-GB
file costs one short read.
"""

import struct
from pathlib import Path
from typing import Any, BinaryIO

from backpropagate.contract.errors import BackpropError

MAGIC = b"GGUF"
STRING, ARRAY = 8, 9
# value type -> struct format of one scalar (little-endian)
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_metadata(path: Path) -> dict[str, Any]:
    """Every key-value of the GGUF header, arrays as lists."""
    with open(path, "rb") as file:
        if file.read(4) != MAGIC:
            raise BackpropError("INPUT_GGUF_INVALID", path=path, reason="it does not start with GGUF")
        (version,) = _unpack(file, "<I", path)
        if version not in (2, 3):
            raise BackpropError("INPUT_GGUF_INVALID", path=path, reason=f"GGUF version {version} is not 2 or 3")
        _tensors, count = _unpack(file, "<QQ", path)
        metadata = {}
        for _ in range(count):
            key = _string(file, path)
            (kind,) = _unpack(file, "<I", path)
            metadata[key] = _value(file, kind, path)
        return metadata


def token_text(metadata: dict[str, Any], key: str) -> str:
    """The text of a special token named by id (``tokenizer.ggml.bos_token_id``), or "" when absent."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    index = metadata.get(key)
    return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else ""


def _value(file: BinaryIO, kind: int, path: Path) -> Any:
    if kind == STRING:
        return _string(file, path)
    if kind == ARRAY:
        item_kind, length = _unpack(file, "<IQ", path)
        return [_value(file, item_kind, path) for _ in range(length)]
    if kind not in SCALARS:
        raise BackpropError("INPUT_GGUF_INVALID", path=path, reason=f"unknown value type {kind}")
    return _unpack(file, SCALARS[kind], path)[0]


def _string(file: BinaryIO, path: Path) -> str:
    (length,) = _unpack(file, "<Q", path)
    data = file.read(length)
    if len(data) != length:
        raise BackpropError("INPUT_GGUF_INVALID", path=path, reason="the header ends inside a string")
    return data.decode("utf-8", errors="replace")


def _unpack(file: BinaryIO, fmt: str, path: Path) -> tuple:
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) != size:
        raise BackpropError("INPUT_GGUF_INVALID", path=path, reason="the header is cut short")
    return struct.unpack(fmt, data)
