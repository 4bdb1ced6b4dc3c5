"""Folding a LoRA adapter into its base weights one shard at a time.

At most one weight the adapter changes (and the adapter, which is small) is in
memory at once: it is read from the base safetensors, merged in fp32, cast to the
output dtype and written to the output shard straight away (see tensor_files.py).
Every other tensor, the embeddings included, is copied in pieces of 16 MB. The base
is always the original unquantized checkpoint, so a QLoRA adapter is merged into
full-precision weights, never into dequantized 4-bit ones.

    W' = W + (alpha / r) * B @ A                        LoRA (alpha / sqrt(r) with rsLoRA)
    W' = m / ||W + s * B @ A||_row * (W + s * B @ A)    DoRA, m the learned magnitude
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from backpropagate.contract.errors import BackpropError
from safetensors import safe_open

from backpropagate_stages.merge.tensor_files import TensorFileReader, TensorFileWriter

ADAPTER_PREFIX = "base_model.model."
# Tensors the adapter leaves alone are copied (and cast) this much at a time.
PIECE_BYTES = 16 * 2**20
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# Adapter options that change the maths above; merging them as plain LoRA would be silently wrong.
_UNSUPPORTED = ("rank_pattern", "alpha_pattern", "modules_to_save", "lora_bias", "trainable_token_indices",
                "layer_replication")


@dataclass
class LoraPair:
    a: torch.Tensor  # [r, in]
    b: torch.Tensor  # [out, r]
    magnitude: torch.Tensor | None = None  # DoRA: [out]


@dataclass(frozen=True)
class AdapterConfig:
    r: int
    alpha: float
    rslora: bool
    dora: bool
    fan_in_fan_out: bool

    @property
    def scale(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.rslora else self.alpha / self.r


def read_adapter(adapter_dir: Path) -> tuple[AdapterConfig, dict[str, LoraPair]]:
    """The adapter's settings and its LoRA pairs, keyed by the base weight they change."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    for key in _UNSUPPORTED:
        if config.get(key):
            raise BackpropError("INPUT_ADAPTER_UNSUPPORTED", path=adapter_dir, reason=f"it uses {key}")
    settings = AdapterConfig(r=config["r"], alpha=config["lora_alpha"], rslora=bool(config.get("use_rslora")),
                             dora=bool(config.get("use_dora")), fan_in_fan_out=bool(config.get("fan_in_fan_out")))
    parts: dict[str, dict[str, torch.Tensor]] = {}
    with safe_open(adapter_dir / "adapter_model.safetensors", "pt") as tensors:
        for name in tensors.keys():
            module, _, kind = name.removeprefix(ADAPTER_PREFIX).rpartition(".lora_")
            parts.setdefault(f"{module}.weight", {})[kind] = tensors.get_tensor(name).float()
    pairs = {}
    for weight, found in parts.items():
        if "A.weight" not in found or "B.weight" not in found:
            raise BackpropError("INPUT_ADAPTER_UNSUPPORTED", path=adapter_dir,
                                reason=f"{weight} has {', '.join(sorted(found))} but not both lora_A and lora_B")
        pairs[weight] = LoraPair(found["A.weight"], found["B.weight"], found.get("magnitude_vector"))
    return settings, pairs


def merge_weight(weight: torch.Tensor, pair: LoraPair, config: AdapterConfig) -> torch.Tensor:
    """The merged weight in fp32, built in one buffer: B @ A is added in place (addmm_), so no
    separate delta or sum of the weight's size is ever allocated beside it."""
    merged = weight.to(torch.float32, copy=True)
    if config.fan_in_fan_out:
        merged.addmm_(pair.a.T, pair.b.T, alpha=config.scale)  # the weight is stored [in, out]
    else:
        merged.addmm_(pair.b, pair.a, alpha=config.scale)
    if config.dora:
        oriented = merged.T if config.fan_in_fan_out else merged  # a view: scaling it scales merged
        norm = torch.linalg.norm(oriented, dim=1)
        oriented.mul_((pair.magnitude / norm).view(-1, 1))
    return merged


def base_shards(base_dir: Path) -> list[Path]:
    index = base_dir / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [base_dir / name for name in files]
    single = base_dir / "model.safetensors"
    if single.exists():
        return [single]
    raise BackpropError("INPUT_MODEL_NOT_SAFETENSORS", path=base_dir)


def merge_shards(base_dir: Path, adapter_dir: Path, out_dir: Path, dtype: str,
                 on_shard: Callable[[int, int, str], None]) -> dict[str, str]:
    """Write merged shards into ``out_dir``; returns the weight map (tensor name -> shard file)."""
    config, pairs = read_adapter(adapter_dir)
    shards = base_shards(base_dir)
    target = DTYPES[dtype]
    weight_map: dict[str, str] = {}
    merged_names: set[str] = set()
    for number, shard in enumerate(shards, start=1):
        name = shard.name if len(shards) > 1 else "model.safetensors"
        with TensorFileReader(shard) as reader:
            layout = {key: (target if reader.dtype(key).is_floating_point else reader.dtype(key), reader.shape(key))
                      for key in reader.names}
            writer = TensorFileWriter(out_dir / name, layout, metadata={"format": "pt"})
            try:
                for key in reader.names:
                    dtype = layout[key][0]
                    if key in pairs:
                        writer.write(key, merge_weight(reader.read(key), pairs[key], config).to(dtype))
                        merged_names.add(key)
                    else:  # copied in pieces: an embedding is often the largest tensor of all
                        writer.write_pieces(key, (piece.to(dtype) for piece in reader.read_pieces(key, PIECE_BYTES)))
                    weight_map[key] = name
                writer.finish()
            finally:
                writer.close()
        on_shard(number, len(shards), name)
    missing = sorted(set(pairs) - merged_names)
    if missing:
        raise BackpropError("INPUT_ADAPTER_MISMATCH", adapter=adapter_dir, base=base_dir,
                            names=", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return weight_map
