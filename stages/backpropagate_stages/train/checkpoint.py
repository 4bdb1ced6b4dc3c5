"""Saving what a run produces, never half of it: checkpoints and the final adapter.

Every folder is written as ``<name>.partial`` and renamed when complete, so a
crash leaves either the whole thing or a ``.partial`` that is ignored and removed
at the next start. A checkpoint holds everything resume needs (adapter weights,
optimizer and scheduler state, RNG states, data position, step and the loop's
counters), with the sha256 of each file in ``checkpoint.json``; a checkpoint whose
files do not match is refused.
"""

import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from backpropagate.contract import layout
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text, is_disk_full, publish_folder, sha256_file
from backpropagate.contract.layout import RunFolder

from backpropagate_stages.train.data import BatchStream
from backpropagate_stages.train.loop import LoopState

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def save_checkpoint(folder: Path, model, optimizer, scheduler, stream: BatchStream, state: LoopState,
                    spec_hash: str, during_write=lambda step, path: None) -> Path:
    """Write checkpoints/step-N atomically; a full disk leaves the older checkpoints untouched."""
    final = folder / f"step-{state.step}"
    partial = layout.partial(final)
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        model.save_pretrained(partial / "adapter")
        during_write(state.step, partial)
        # Through a Python file: torch's own writer reports a full disk only as "unexpected pos",
        # while this way the OSError (ENOSPC) it met is kept as the error's context.
        with open(partial / "training_state.pt", "wb") as handle:
            torch.save({
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "data": stream.state(),
                "loop": asdict(state),
                "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                "spec_hash": spec_hash,
            }, handle)
        files = {str(f.relative_to(partial)): sha256_file(f) for f in sorted(partial.rglob("*")) if f.is_file()}
        loss = state.losses[-1] if state.losses else None
        atomic_write_text(partial / "checkpoint.json",
                          json.dumps({"run_id": folder.parent.name, "step": state.step, "loss": loss,
                                      "files": files}, indent=1) + "\n")
        publish_folder(partial, final)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)  # whatever stopped the write, no half checkpoint stays
        if is_disk_full(exc):
            raise disk_full(partial, folder.parent) from None
        raise
    return final


def disk_full(path: Path, run_dir: Path) -> BackpropError:
    """RUNTIME_DISK_FULL for a write into this run: the checkpoints written before it are intact."""
    return BackpropError("RUNTIME_DISK_FULL", path=path, output=run_dir.parent,
                         then=f"`backprop resume {run_dir.name}`")


def remove_partials(folder: Path) -> None:
    """Leftovers of a write that a crash interrupted: never complete, never loaded."""
    for leftover in folder.glob("*" + layout.PARTIAL):
        shutil.rmtree(leftover)


def completed(folder: Path) -> list[Path]:
    """Finished checkpoint folders, oldest step first."""
    done = [p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(layout.PARTIAL)]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints and the one with the lowest loss."""
    remove_partials(folder)
    done = completed(folder)
    losses = {p: _loss_of(p) for p in done}
    scored = [p for p in done if losses[p] is not None]
    best = min(scored, key=lambda p: losses[p]) if scored else None
    for old in done[:-keep]:
        if old != best:
            shutil.rmtree(old)


def verify(checkpoint: Path) -> None:
    """Raise STATE_CHECKPOINT_INVALID unless every listed file is there with its sha256."""
    try:
        listed = json.loads((checkpoint / "checkpoint.json").read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise BackpropError("STATE_CHECKPOINT_INVALID", path=checkpoint,
                            reason=f"checkpoint.json is unreadable ({exc})") from None
    for name, digest in listed.items():
        path = checkpoint / name
        if not path.is_file():
            raise BackpropError("STATE_CHECKPOINT_INVALID", path=checkpoint, reason=f"{name} is missing")
        if sha256_file(path) != digest:
            raise BackpropError("STATE_CHECKPOINT_INVALID", path=checkpoint, reason=f"{name} does not match "
                                                                                     "its sha256")


def restore(checkpoint: Path, model, optimizer, scheduler, stream: BatchStream, spec_hash: str) -> LoopState:
    """Load a verified checkpoint into the live objects; returns the loop state to continue from.

    A checkpoint made under other settings (the run's spec.json was edited since) would continue
    a different run: it is refused with STATE_CHECKPOINT_SPEC_CHANGED before anything is loaded."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = torch.load(checkpoint / "training_state.pt", weights_only=False)
    if saved.get("spec_hash") != spec_hash:
        raise BackpropError("STATE_CHECKPOINT_SPEC_CHANGED", path=checkpoint, spec=RunFolder(checkpoint.parents[1]).spec,
                            saved=str(saved.get("spec_hash"))[:12], now=spec_hash[:12],
                            run_id=checkpoint.parents[1].name)
    set_peft_model_state_dict(model, load_file(checkpoint / "adapter" / ADAPTER_WEIGHTS))
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    stream.restore(saved["data"])
    random.setstate(saved["rng"]["python"])
    torch.set_rng_state(saved["rng"]["torch"])
    if saved["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return LoopState(**saved["loop"])


def save_adapter(model, target: Path, during_write=lambda: None) -> Path:
    partial = layout.partial(target)
    if partial.exists():
        shutil.rmtree(partial)
    try:
        model.save_pretrained(partial)
        during_write()
        publish_folder(partial, target)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if is_disk_full(exc):
            raise disk_full(partial, target.parent) from None
        raise
    return target


def _loss_of(checkpoint: Path) -> float | None:
    try:
        return json.loads((checkpoint / "checkpoint.json").read_text()).get("loss")
    except (OSError, ValueError):
        return None
