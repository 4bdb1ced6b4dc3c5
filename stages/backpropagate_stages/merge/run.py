"""The merge stage as a recipe: find the base weights, merge shard by shard, copy the rest, publish.

    python -m backpropagate_stages.merge --spec output/<run_id>/merge.spec.json

writes ``merged/`` into the run folder: safetensors shards (and their index when
there are several), config.json with the output dtype, and every tokenizer file of
the base (``tokenizer.model`` included), so the folder loads with transformers and
converts with llama.cpp.
"""

import json
import shutil
from pathlib import Path

from backpropagate.contract import events, layout
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text, publish_folder
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.manifest import describe, record_artifacts
from backpropagate.contract.specs import MergeResult, MergeSpec

from backpropagate_stages.base_model import base_folder
from backpropagate_stages.merge.streaming import merge_shards
from backpropagate_stages.train.faults import Faults

# Weight files of other formats are not copied: the merged safetensors replace them.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".gguf", ".ckpt")


def run(spec: MergeSpec, emit) -> MergeResult:
    folder = RunFolder(Path(spec.run_dir))
    adapter = Path(spec.adapter)
    if not (adapter / "adapter_config.json").exists():
        raise BackpropError("INPUT_ADAPTER_UNSUPPORTED", path=adapter, reason="it has no adapter_config.json")
    base = base_folder(spec.base_model)
    _return_large_buffers_when_freed()
    partial = layout.partial(folder.merged)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)

    faults = Faults.from_env()

    def on_shard(number: int, total: int, name: str) -> None:
        emit(events.Metric(key="merge_shard", value=f"{number}/{total} {name}"))
        faults.power_cut("merge")

    try:
        shard_files = _write_merged(base, adapter, partial, spec.dtype, on_shard)
        publish_folder(partial, folder.merged)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed merge leaves no half-written folder
        raise
    artifacts = [describe("merged", folder.merged / name, folder.root) for name in shard_files]
    for artifact in artifacts:
        emit(events.Artifact(kind="merged", path=str(folder.root / artifact["path"]), bytes=artifact["bytes"],
                             sha256=artifact["sha256"]))
    record_artifacts(folder.manifest, spec.run_id, {"merged"}, artifacts, _versions())
    return MergeResult(merged=str(folder.merged), shards=len(shard_files), dtype=spec.dtype,
                       bytes=sum(a["bytes"] for a in artifacts))


def _return_large_buffers_when_freed() -> None:
    """Serve every buffer of 4 MB or more from a mapping of its own, unmapped when it is freed.

    By default glibc raises its mmap threshold after the first large free and serves later
    tensors from its arenas (one per torch worker thread), which keep freed space: the peak
    of a merge then drifts by 100 MB and more from run to run (scripts/bench_merge.py).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: mallopt and this threshold are glibc's
    libc.mallopt(-3, 4 * 2**20)  # M_MMAP_THRESHOLD; setting it also stops glibc from moving it


def _versions() -> dict:
    import safetensors
    import torch
    from backpropagate import __version__

    return {"backpropagate": __version__, "torch": torch.__version__, "safetensors": safetensors.__version__}


def _write_merged(base: Path, adapter: Path, partial: Path, dtype: str, on_shard) -> list[str]:
    weight_map = merge_shards(base, adapter, partial, dtype, on_shard)
    shard_files = sorted(set(weight_map.values()))
    if len(shard_files) > 1:
        atomic_write_text(partial / "model.safetensors.index.json",
                          json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1) + "\n")
    for source in sorted(base.iterdir()):
        if source.is_file() and not source.name.endswith(_WEIGHT_SUFFIXES) and \
                source.name != "model.safetensors.index.json":
            shutil.copy2(source, partial / source.name)
    config = json.loads((partial / "config.json").read_text())
    config["dtype"] = dtype
    atomic_write_text(partial / "config.json", json.dumps(config, indent=2) + "\n")
    return shard_files


