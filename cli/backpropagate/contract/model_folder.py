"""What is wrong with a local model folder, found without loading it: each fault its own code and fix.

Read cheaply, before any weight is loaded: config.json parsed, each safetensors file's header
read and its tensors' offsets checked against the file's size and their shapes, the tokenizer's
JSON files parsed. Checks that need transformers (is the architecture known?) are the stage's.
"""

import json
import math
import struct
from pathlib import Path

from backpropagate.contract.errors import BackpropError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on a header
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
TOKENIZER_JSON = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def check_model_folder(folder: Path, shown: str) -> None:
    """Raise the coded error of the first fault found in ``folder`` (named ``shown`` to the user)."""
    _check_config(folder / "config.json", shown)
    for weights in sorted(path for path in folder.glob("*.safetensors") if path.is_file()):
        problem = safetensors_problem(weights)
        if problem:
            raise BackpropError("INPUT_MODEL_WEIGHTS_DAMAGED", file=weights, reason=problem)
    _check_shards(folder, shown)
    for name in TOKENIZER_JSON:
        path = folder / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise BackpropError("INPUT_MODEL_TOKENIZER_INVALID", model=shown,
                                    reason=f"{name} is not valid JSON ({exc})") from None


def _check_config(path: Path, shown: str) -> None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackpropError("INPUT_MODEL_CONFIG_INVALID", model=shown, reason=f"is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise BackpropError("INPUT_MODEL_CONFIG_INVALID", model=shown, reason="is not a JSON object")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise BackpropError("INPUT_MODEL_CONFIG_INVALID", model=shown,
                            reason="names no model_type (the architecture transformers builds)")


def _check_shards(folder: Path, shown: str) -> None:
    """Every shard the index names is there."""
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise BackpropError("INPUT_MODEL_WEIGHTS_DAMAGED", file=index,
                            reason="it is not a shard index (JSON with a weight_map)") from None
    missing = sorted(name for name in shards if not (folder / str(name)).is_file())
    if missing:
        raise BackpropError("INPUT_MODEL_WEIGHTS_DAMAGED", file=index,
                            reason=f"the shard(s) it names are missing: {', '.join(missing)}")


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file, or None. Reads the header only."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            return f"it is {size} bytes, shorter than a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            return f"its header claims {length:,} bytes, but the file has {size - 8:,} after the first 8"
        try:
            header = json.loads(file.read(length))
        except (ValueError, UnicodeDecodeError):
            return "its header is not JSON: it is not a safetensors file"
    if not isinstance(header, dict):
        return "its header is not a JSON object: it is not a safetensors file"
    data_bytes, end_of_data = size - 8 - length, 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(offset) for offset in tensor["data_offsets"])
            dtype, shape = tensor["dtype"], tensor["shape"]
            # A dtype newer than this table (sub-byte floats) is sized by the loader, not here.
            expected = math.prod(shape) * DTYPE_BYTES[dtype] if dtype in DTYPE_BYTES else end - begin
        except (TypeError, KeyError, ValueError):
            return f"tensor {name!r} has no valid dtype, shape and data_offsets"
        if end - begin != expected:
            return f"tensor {name!r} ({dtype} {shape}) should take {expected:,} bytes, its offsets give {end - begin:,}"
        end_of_data = max(end_of_data, end)
    if end_of_data > data_bytes:
        return (f"it is cut short: its tensors need {end_of_data + 8 + length:,} bytes, the file has {size:,} "
                "(an interrupted download or copy)")
    return None
