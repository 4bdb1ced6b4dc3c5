"""The train stage as a recipe: device, data, model, loop, save.

    python -m backpropagate_stages.train --spec output/<run_id>/spec.json

reads a TrainSpec, trains a LoRA adapter, and writes ``adapter/``, checkpoints and
``manifest.json`` into the run folder. Events go to stdout (see harness.py).
"""

import hashlib
import json
import logging
import random
from pathlib import Path

from backpropagate import __version__, events
from backpropagate.dataset import load_dataset
from backpropagate.errors import BackpropError
from backpropagate.model_ref import check_model_ref
from backpropagate.runs.files import sha256_file
from backpropagate.runs.folder import RunFolder
from backpropagate.schema import to_dict
from backpropagate.specs import TrainSpec
from backpropagate_stages.train import checkpoint, data, model

log = logging.getLogger("backpropagate.train")


def run(spec: TrainSpec, emit) -> dict:
    import torch

    folder = RunFolder(Path(spec.run_dir))
    log.debug("spec %s", json.dumps(to_dict(spec), sort_keys=True))
    check_model_ref(spec.model)
    device = model.resolve_device(spec.training.device, spec.lora)
    _seed_everything(spec.training.seed)

    dataset = _load_data(spec, emit)
    tokenizer = model.load_tokenizer(spec.model)
    if tokenizer.chat_template is None and dataset.format != "text":
        emit(events.Warning(code="chat_template_fallback",
                            message=f"{spec.model} has no chat template; using ChatML"))
        tokenizer.chat_template = data.CHATML_TEMPLATE
    examples = _tokenize(dataset, tokenizer, spec, emit)
    stream = data.BatchStream(examples, spec.training.batch_size, spec.training.max_seq_length,
                              spec.training.packing, tokenizer.pad_token_id, spec.training.seed)
    emit(events.Metric(key="examples", value=len(examples)))
    emit(events.Metric(key="rows", value=len(stream.rows)))

    backend = model.choose_backend(spec.training.unsloth, device.type, model.model_type_of(spec.model),
                                   model.unsloth_installed(), spec.lora.dora)
    log.info("backend=%s (%s) device=%s", backend.name, backend.reason, device)
    # Seed again right before the adapter is created, so its initial weights depend on the seed alone.
    _seed_everything(spec.training.seed)
    lora_model = model.load_lora_model(spec.model, spec.lora, spec.training, device, backend)

    from backpropagate_stages.train.loop import make_optimizer, train_loop

    optimizer, scheduler = make_optimizer(lora_model, spec.training)
    spec_hash = hashlib.sha256(json.dumps(to_dict(spec), sort_keys=True).encode()).hexdigest()

    def on_step(state):
        every = spec.training.checkpoint_every
        if every and state.step % every == 0 and state.step < spec.training.steps:
            path = checkpoint.save_checkpoint(folder.checkpoints, state.step, lora_model, optimizer, scheduler,
                                              stream, state, spec_hash)
            checkpoint.prune_checkpoints(folder.checkpoints, spec.training.keep_checkpoints)
            emit(events.Checkpoint(step=state.step, path=str(path)))

    state = train_loop(lora_model, optimizer, scheduler, stream, spec.training, device, emit, on_step)

    adapter = checkpoint.save_adapter(lora_model, folder.adapter)
    artifact = checkpoint.describe("adapter", adapter, folder.root)
    emit(events.Artifact(kind="adapter", path=str(adapter), bytes=artifact["bytes"], sha256=artifact["sha256"]))
    versions = _versions(torch)
    checkpoint.write_manifest(folder.manifest, spec.run_id, [artifact], versions)
    return {
        "adapter": str(adapter),
        "final_loss": state.losses[-1],
        "losses": state.losses,
        "learning_rates": state.learning_rates,
        "steps": state.step,
        "tokens_per_s": round(state.tokens / state.seconds, 1) if state.seconds else 0.0,
        "device": device.type,
        "backend": backend.name,
        "dataset_format": dataset.format,
        "examples": len(examples),
        "dropped_rows": len(dataset.dropped),
        "versions": versions,
    }


def _load_data(spec: TrainSpec, emit):
    path = Path(spec.data.path)
    if spec.data.sha256 and path.exists() and sha256_file(path) != spec.data.sha256:
        raise BackpropError("INPUT_DATASET_INVALID", location=f"{path}:1",
                            reason="the file changed after the run was planned (sha256 differs)")
    dataset = load_dataset(path, spec.data.format, spec.data.skip_invalid)
    if dataset.dropped:
        first = dataset.dropped[0]
        emit(events.Warning(code="rows_dropped", message=f"skipped {len(dataset.dropped)} of {dataset.total_rows} "
                                                         f"rows; first at {path}:{first.line}: {first.reason}"))
    return dataset


def _tokenize(dataset, tokenizer, spec: TrainSpec, emit) -> list:
    examples, truncated, empty = [], 0, 0
    for example in dataset.examples:
        tokenized = data.tokenize(example, tokenizer, spec.training.max_seq_length, spec.training.train_on_inputs)
        if tokenized.trained_tokens == 0:
            empty += 1  # truncation cut away every target token: nothing to learn from
            continue
        truncated += len(tokenized.input_ids) == spec.training.max_seq_length
        examples.append(tokenized)
    if truncated or empty:
        emit(events.Warning(code="examples_truncated",
                            message=f"{truncated} examples cut to --max-seq-length {spec.training.max_seq_length}; "
                                    f"{empty} left out because no reply token fit"))
    if not examples:
        raise BackpropError("INPUT_DATASET_INVALID", location=f"{dataset.path}:1",
                            reason=f"no example has a reply within --max-seq-length {spec.training.max_seq_length}")
    return examples


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _versions(torch) -> dict:
    import peft
    import transformers

    return {"backpropagate": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}
