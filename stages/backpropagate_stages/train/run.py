"""The train stage as a recipe: device, data, model, loop, save.

    python -m backpropagate_stages.train --spec output/<run_id>/spec.json

reads a TrainSpec, trains a LoRA adapter, and writes ``adapter/``, checkpoints and
``manifest.json`` into the run folder. Events go to stdout (see harness.py).

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m backpropagate_stages.train --spec ...

trains the same adapter data-parallel (distributed.py): every rank trains, rank 0 alone
emits events and writes checkpoints, the adapter and the manifest.
"""

import hashlib
import json
import logging
import random
from dataclasses import replace
from pathlib import Path

from backpropagate import __version__
from backpropagate.contract import events
from backpropagate.contract.dataset import load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import sha256_file
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.manifest import describe, record_artifacts
from backpropagate.contract.model_ref import check_model_ref
from backpropagate.contract.quality import QualityReport, load_prompts, split_held_out, write_report
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import TrainResult, TrainSpec

from backpropagate_stages.eval import quality
from backpropagate_stages.harness import STOP
from backpropagate_stages.train import checkpoint, continual, data, distributed, model, thermal
from backpropagate_stages.train.faults import Faults
from backpropagate_stages.train.loop import Hooks, LoopState, make_optimizer, train_loop
from backpropagate_stages.train.thermal import ThermalGuard

log = logging.getLogger("backpropagate.train")


def run(spec: TrainSpec, emit) -> TrainResult:
    folder = RunFolder(Path(spec.run_dir))
    log.debug("spec %s", json.dumps(to_dict(spec), sort_keys=True))
    faults = Faults.from_env()
    if faults.active:
        emit(events.Warning(code="fault_injection", message=f"test faults injected: {faults.plan}"))
    check_model_ref(spec.model)
    model.check_architecture(spec.model)
    device = model.resolve_device(spec.training.device, spec.lora, warn=lambda message: emit(
        events.Warning(code="cpu_fallback", message=message)))
    world = distributed.join(device.type)
    try:
        return _train(spec, emit, folder, faults, device, world)
    finally:
        world.close()


def _train(spec: TrainSpec, emit, folder: RunFolder, faults: Faults, device, world: distributed.World) -> TrainResult:
    if world.distributed:
        log.info("rank %d of %d (local rank %d)", world.rank, world.size, world.local_rank)
        emit(events.Metric(key="workers", value=world.size))
    _seed_everything(spec.training.seed)

    dataset = _load_data(spec, emit)
    tokenizer = model.load_tokenizer(spec.model)
    if tokenizer.chat_template is None and dataset.format != "text":
        emit(events.Warning(code="chat_template_fallback",
                            message=f"{spec.model} has no chat template; using ChatML"))
        tokenizer.chat_template = data.CHATML_TEMPLATE
    examples = _tokenize(dataset, tokenizer, spec, emit)
    examples, held_out, eval_source = _held_out(spec, examples, tokenizer)
    stream = data.BatchStream(examples, spec.training.max_seq_length, spec.training.packing,
                              tokenizer.pad_token_id, spec.training.seed)
    emit(events.Metric(key="examples", value=len(examples)))
    emit(events.Metric(key="rows", value=len(stream.rows)))

    backend = model.choose_backend(spec.training.unsloth, device.type, model.model_type_of(spec.model),
                                   model.unsloth_installed(), spec.lora.dora)
    log.info("backend=%s (%s) device=%s", backend.name, backend.reason, device)
    # Seed again right before the adapter is created, so its initial weights depend on the seed alone.
    _seed_everything(spec.training.seed)
    lora_model = model.load_lora_model(spec.model, spec.lora, spec.training, device, backend)
    model.redact_base_name(lora_model)
    if spec.campaign is not None and spec.campaign.index > 1:
        continual.start_from_parent(lora_model, spec.campaign)  # a resumed run's checkpoint then replaces it
    optimizer, scheduler = make_optimizer(lora_model, spec.training)

    # The resume flag is how the run is continued, not what it is: leave it out of the hash.
    spec_hash = hashlib.sha256(json.dumps(to_dict(replace(spec, resume=False)), sort_keys=True).encode()).hexdigest()
    state = LoopState(micro_batch=spec.training.batch_size, accumulation=spec.training.gradient_accumulation)
    if world.is_main:
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_partials(folder.checkpoints)
    world.barrier()  # every rank then sees the same checkpoints, and resumes from the same one
    if spec.resume:
        state = _resume(folder, lora_model, optimizer, scheduler, stream, spec_hash, emit) or state
    resumed_from = state.step

    def measure(state: LoopState) -> None:
        if not world.is_main:
            return
        loss = quality.held_out_loss(lora_model, held_out, tokenizer.pad_token_id, device)
        state.eval_losses.append([state.step, loss])
        emit(events.Metric(key="eval_loss", value=loss, step=state.step))

    if held_out and not state.eval_losses:
        measure(state)  # before the first step: the base's loss, the adapter being zero

    def save(state: LoopState) -> None:
        if not world.is_main:
            return
        path = checkpoint.save_checkpoint(folder.checkpoints, lora_model, optimizer, scheduler, stream, state,
                                          spec_hash, faults.during_checkpoint)
        checkpoint.prune_checkpoints(folder.checkpoints, spec.training.keep_checkpoints)
        emit(events.Checkpoint(step=state.step, path=str(path)))

    def after_step(state: LoopState) -> None:
        faults.after_step(state.step)
        if held_out and spec.training.eval_every and state.step % spec.training.eval_every == 0:
            measure(state)  # before the checkpoint, which then keeps it
        every = spec.training.checkpoint_every
        if every and state.step % every == 0 and state.step < spec.training.steps:
            save(state)

    guard = _thermal_guard(spec, device, faults, emit) if world.is_main else None  # the others wait for rank 0
    hooks = Hooks(before_step=guard.check if guard else (lambda step: None),
                  before_micro_batch=faults.before_micro_batch, after_step=after_step,
                  stop_requested=lambda: STOP.requested)
    STOP.listening = True
    state = train_loop(lora_model, optimizer, scheduler, stream, spec.training, device, emit, hooks, state, world)
    if state.step < spec.training.steps:
        # Stopped after a step every rank finished, asked here or on another rank. Still listening: each rank
        # hears a stop when its own runtime passes it on, so the request may reach this one only now, and it is
        # this same stop, not a second one that cuts the checkpoint short.
        every = spec.training.checkpoint_every
        if spec.training.checkpoint_on_interrupt and not (every and state.step % every == 0) and state.step:
            save(state)
        raise KeyboardInterrupt
    STOP.listening = False

    if not world.is_main:  # what is left only writes: the report, the adapter, the manifest
        return _result(state, resumed_from, guard, device, backend, dataset, examples, None, "", None,
                       folder.adapter)
    if held_out and state.eval_losses[-1][0] != state.step:
        measure(state)
    report = _report(spec, lora_model, tokenizer, device, state, held_out, eval_source, emit)
    adapter = checkpoint.save_adapter(lora_model, folder.adapter, lambda: faults.power_cut("adapter"))
    artifact = describe("adapter", adapter / checkpoint.ADAPTER_WEIGHTS, folder.root)
    emit(events.Artifact(kind="adapter", path=str(adapter), bytes=artifact["bytes"], sha256=artifact["sha256"]))
    artifacts, merged_adapter, merge_lambda = [artifact], "", None
    if spec.campaign is not None:
        merged, merge_lambda = continual.save_merged(spec.campaign, adapter, folder.merged_adapter)
        merged_adapter = str(merged)
        artifacts.append(describe("merged_adapter", merged / checkpoint.ADAPTER_WEIGHTS, folder.root))
        emit(events.Artifact(kind="merged_adapter", path=merged_adapter, bytes=artifacts[-1]["bytes"],
                             sha256=artifacts[-1]["sha256"]))
    record_artifacts(folder.manifest, spec.run_id, {"adapter", "merged_adapter"}, artifacts, _versions(),
                     parent_run=spec.campaign.parent_run if spec.campaign else None)
    return _result(state, resumed_from, guard, device, backend, dataset, examples, report, merged_adapter,
                   merge_lambda, adapter)


def _result(state: LoopState, resumed_from: int, guard, device, backend, dataset, examples, report,
            merged_adapter: str, merge_lambda, adapter: Path) -> TrainResult:
    versions = _versions()
    return TrainResult(
        adapter=str(adapter),
        final_loss=state.losses[-1],
        losses=list(state.losses),
        learning_rates=list(state.learning_rates),
        steps=state.step,
        resumed_from_step=resumed_from,
        tokens=state.tokens,
        train_seconds=round(state.seconds, 3),
        tokens_per_s=round(state.tokens / state.seconds, 1) if state.seconds else 0.0,
        oom_adjustments=list(state.oom_adjustments),
        thermal_pauses=list(guard.pauses) if guard else [],
        device=device.type,
        backend=backend.name,
        dataset_format=dataset.format,
        examples=len(examples),
        dropped_rows=len(dataset.dropped),
        versions=versions,
        quality=report.summary() if report else {},
        merged_adapter=merged_adapter,
        merge_lambda=merge_lambda,
    )


def _resume(folder: RunFolder, lora_model, optimizer, scheduler, stream, spec_hash: str, emit) -> LoopState | None:
    """Continue from the newest checkpoint that verifies; a damaged one is reported and skipped."""
    for candidate in reversed(checkpoint.completed(folder.checkpoints)):
        try:
            checkpoint.verify(candidate)
            state = checkpoint.restore(candidate, lora_model, optimizer, scheduler, stream, spec_hash)
        except BackpropError as error:
            if error.code != "STATE_CHECKPOINT_INVALID":
                raise
            emit(events.Warning(code=error.code, message=f"{error.message}; trying the previous checkpoint"))
            continue
        emit(events.Resumed(reason=f"from checkpoint {candidate.name}"))
        return state
    emit(events.Warning(code="no_checkpoint", message="no valid checkpoint to resume from; starting at step 0"))
    return None


def _held_out(spec: TrainSpec, examples: list, tokenizer) -> tuple[list, list, str]:
    """(training examples, held-out examples, where the held-out ones came from)."""
    if spec.eval_data is not None:
        held = quality.tokenize_file(spec.eval_data, tokenizer, spec.training.max_seq_length,
                                     spec.training.train_on_inputs)
        if not held:
            raise BackpropError("INPUT_DATASET_INVALID", location=f"{spec.eval_data.source}:1",
                                reason="no eval example has a reply within --max-seq-length "
                                       f"{spec.training.max_seq_length}")
        return examples, held, spec.eval_data.source
    if not spec.training.eval_split:
        return examples, [], ""
    if len(examples) < 2:  # the host counted rows; fewer may have a reply within --max-seq-length
        raise BackpropError("INPUT_EVAL_SPLIT_TOO_FEW", split=spec.training.eval_split, path=spec.data.source,
                            count=len(examples))
    kept, held = split_held_out(examples, spec.training.eval_split, spec.training.seed)
    return kept, held, (f"{len(held)} of {len(examples)} examples of {spec.data.source} held out "
                        f"(--eval-split {spec.training.eval_split})")


def _report(spec: TrainSpec, model, tokenizer, device, state: LoopState, held_out: list, eval_source: str,
            emit) -> QualityReport | None:
    """The run's quality report, written to quality.json: held-out losses, and the answers of base and
    fine-tune to the eval prompts."""
    answers = []
    if spec.eval_prompts is not None:
        prompts = load_prompts(spec.eval_prompts.path, spec.eval_prompts.source)
        limit = spec.training.eval_max_tokens
        answers = quality.answered(prompts, quality.answer(model, tokenizer, prompts, limit, device, adapter=False),
                                   quality.answer(model, tokenizer, prompts, limit, device))
    if not held_out and not answers:
        return None
    report = QualityReport(eval_source=eval_source, eval_examples=len(held_out), eval_loss=state.eval_losses,
                           answers=answers)
    write_report(RunFolder(Path(spec.run_dir)).quality, report)
    if answers:
        hits = report.hits()
        emit(events.Metric(key="eval_hits", value=f"base {hits['base']}, fine-tune {hits['fine_tune']} "
                                                  f"of {hits['expected']}"))
    return report


def _thermal_guard(spec: TrainSpec, device, faults: Faults, emit) -> ThermalGuard | None:
    sampler, why_off = thermal.open_sampler(device.type, faults.temperatures())
    if sampler is None:
        emit(events.Warning(code="thermal_guard_off", message=f"thermal guard off: {why_off}"))
        return None
    return ThermalGuard(sampler, spec.training, emit, spec.run_id)


def _load_data(spec: TrainSpec, emit):
    path = Path(spec.data.path)
    shown = spec.data.source or str(path)  # the user's path, redacted; `path` may be a link to it
    if spec.data.sha256 and path.exists() and (now := sha256_file(path)) != spec.data.sha256:
        raise BackpropError("INPUT_DATASET_CHANGED_MID_RUN", path=shown, run_id=spec.run_id,
                            old=spec.data.sha256[:12], new=now[:12])
    try:
        dataset = load_dataset(path, spec.data.format, spec.data.skip_invalid)
    except BackpropError as error:
        if error.code != "INPUT_DATASET_INVALID":
            raise
        raise BackpropError(error.code, location=str(error.context["location"]).replace(str(path), shown),
                            reason=error.context["reason"]) from None
    if dataset.dropped:
        first = dataset.dropped[0]
        emit(events.Warning(code="rows_dropped", message=f"skipped {len(dataset.dropped)} of {dataset.total_rows} "
                                                         f"rows; first at {shown}:{first.line}: {first.reason}"))
    return dataset


def _tokenize(dataset, tokenizer, spec: TrainSpec, emit) -> list:
    from jinja2 import TemplateError

    examples, truncated, empty, first_empty, first_refused = [], 0, 0, None, None
    for example in dataset.examples:
        try:
            tokenized = data.tokenize(example, tokenizer, spec.training.max_seq_length,
                                      spec.training.train_on_inputs)
        except TemplateError as refused:  # the template's own raise_exception, or a template that breaks
            location = f"{spec.data.source or dataset.path}:{example.line}"
            error = BackpropError("INPUT_CHAT_TEMPLATE_FAILED", model=spec.model, location=location,
                                  reason=str(refused) or type(refused).__name__)
            if not spec.data.skip_invalid:
                raise error from None
            first_refused = first_refused or error
            emit(events.Warning(code="row_refused_by_template",
                                message=f"skipped {location}: the chat template refused it: {refused}"))
            continue
        if tokenized.trained_tokens == 0:
            empty += 1  # truncation cut away every target token: nothing to learn from
            first_empty = first_empty or example
            continue
        truncated += len(tokenized.input_ids) == spec.training.max_seq_length
        examples.append(tokenized)
    if truncated or empty:
        emit(events.Warning(code="examples_truncated",
                            message=f"{truncated} examples cut to --max-seq-length {spec.training.max_seq_length}; "
                                    f"{empty} left out because no reply token fit"))
    if not examples and first_empty is None:
        raise first_refused  # the template refused every row
    if not examples:
        # Named in the user's file (not the run folder's link to it), with the length that would do.
        whole = data.tokenize(first_empty, tokenizer, 1 << 30, False)
        needed = next(i for i, label in enumerate(whole.labels) if label != data.IGNORE) + 1
        raise BackpropError("INPUT_PROMPT_TOO_LONG", location=f"{spec.data.source or dataset.path}:{first_empty.line}",
                            needed=needed, max_seq_length=spec.training.max_seq_length)
    return examples


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _versions() -> dict:
    import peft
    import torch
    import transformers

    return {"backpropagate": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}
