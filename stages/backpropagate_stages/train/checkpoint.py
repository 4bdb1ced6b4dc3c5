"""Saving what a run produces, never half of it: checkpoints, the final adapter, the manifest.

Every folder is written as ``<name>.partial`` and renamed when complete, so a
crash leaves either the whole thing or a ``.partial`` that is ignored. A
checkpoint holds everything resume needs: adapter weights, optimizer and
scheduler state, RNG states, the data position and the step, with the sha256
of each file in ``checkpoint.json``.
"""

import json
import os
import random
import shutil
from pathlib import Path

import torch

from backpropagate.runs.files import atomic_write_text, fsync_dir, sha256_file
from backpropagate_stages.train.data import BatchStream
from backpropagate_stages.train.loop import LoopState


def publish(partial: Path, final: Path) -> None:
    """Rename a completed ``.partial`` folder into place, replacing an older one."""
    for file in partial.rglob("*"):
        if file.is_file():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    fsync_dir(final.parent)


def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, stream: BatchStream,
                    state: LoopState, spec_hash: str) -> Path:
    final = folder / f"step-{step}"
    partial = folder / f"step-{step}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    model.save_pretrained(partial / "adapter")
    torch.save({
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "data": stream.state(),
        "losses": state.losses,
        "learning_rates": state.learning_rates,
        "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "spec_hash": spec_hash,
    }, partial / "training_state.pt")
    files = {str(f.relative_to(partial)): sha256_file(f) for f in sorted(partial.rglob("*")) if f.is_file()}
    atomic_write_text(partial / "checkpoint.json", json.dumps({"step": step, "files": files}, indent=1) + "\n")
    publish(partial, final)
    return final


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints; remove leftovers of interrupted writes."""
    for leftover in folder.glob("*.partial"):
        shutil.rmtree(leftover)
    done = sorted((p for p in folder.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
    for old in done[:-keep]:
        shutil.rmtree(old)


def save_adapter(model, target: Path) -> Path:
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial)
    publish(partial, target)
    return target


def write_manifest(path: Path, run_id: str, artifacts: list[dict], versions: dict) -> None:
    atomic_write_text(path, json.dumps({"run_id": run_id, "parent_run": None, "versions": versions,
                                        "artifacts": artifacts}, indent=1) + "\n")


def describe(kind: str, path: Path, root: Path) -> dict:
    """An artifact row: the main file's size and sha256 (the safetensors for an adapter)."""
    main = path / "adapter_model.safetensors" if path.is_dir() else path
    return {"kind": kind, "path": str(main.relative_to(root)), "bytes": main.stat().st_size,
            "sha256": sha256_file(main)}
