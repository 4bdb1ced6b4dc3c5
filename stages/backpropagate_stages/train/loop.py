"""The training loop: AdamW on the adapter's weights, warmup then decay, gradient accumulation.

A plain loop rather than a framework trainer: it is short enough to read, and
with packing and no padding waste it is where the speed comes from
(``scripts/bench_train.py`` measures it against TRL's SFTTrainer).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import LOSS_CHUNK_TOKENS, TrainingSettings
from torch.utils.checkpoint import checkpoint

from backpropagate_stages.train.data import IGNORE, Batch, BatchStream


@dataclass
class LoopState:
    """Everything the loop carries from step to step; checkpoints save it, resume restores it."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    micro_batch: int = 0  # rows per forward pass; OOM recovery halves it
    accumulation: int = 0  # forward passes per optimizer step; OOM recovery doubles it
    oom_adjustments: list[dict] = field(default_factory=list)
    eval_losses: list[list] = field(default_factory=list)  # [step, held-out loss]; step 0 is before training


@dataclass(frozen=True)
class Hooks:
    """What the loop calls around each step, so the recipe decides what happens there."""

    before_step: Callable[[int], None]  # thermal guard
    before_micro_batch: Callable[[int], None]  # fault injection
    after_step: Callable[[LoopState], None]  # checkpoints, fault injection
    stop_requested: Callable[[], bool]  # Ctrl-C asked for a clean stop


MAX_OOM_ADJUSTMENTS = 3


def lr_factor(step: int, settings: TrainingSettings) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    warmup, total = settings.warmup_steps, settings.steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if settings.lr_scheduler == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if settings.lr_scheduler == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model, settings: TrainingSettings):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, settings))
    return optimizer, scheduler


def token_losses(model, batch: Batch, device, chunk_tokens: int = LOSS_CHUNK_TOKENS) -> torch.Tensor:
    """Per-position next-token loss, [rows, length-1]; 0 where the label is ignored.

    The logits of the whole batch are never built: only positions with a label go through the output
    layer, ``chunk_tokens`` at a time, each chunk checkpointed so that backward recomputes its logits
    rather than keeping them. Peak memory grows with the chunk, not with vocabulary x sequence x batch,
    and the loss is the one full logits give (tests/local/test_chunked_loss.py).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # through the PEFT wrapper
    hidden = base.get_decoder()(input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device),
                                use_cache=False).last_hidden_state[:, :-1]
    targets = batch.labels[:, 1:].to(device)
    keep = targets != IGNORE
    if not keep.any():
        return hidden.sum(-1).float() * 0  # keeps the graph, so backward on an all-prompt batch still works
    head = base.get_output_embeddings()

    def chunk_loss(states: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(states).float(), wanted, reduction="none")

    states, wanted = hidden[keep], targets[keep]
    pieces = [
        checkpoint(chunk_loss, states[at: at + chunk_tokens], wanted[at: at + chunk_tokens], use_reentrant=False)
        if torch.is_grad_enabled() else chunk_loss(states[at: at + chunk_tokens], wanted[at: at + chunk_tokens])
        for at in range(0, len(wanted), chunk_tokens)
    ]
    return torch.zeros(targets.shape, device=hidden.device).masked_scatter(keep, torch.cat(pieces))


def train_loop(model, optimizer, scheduler, stream: BatchStream, settings: TrainingSettings, device,
               emit: Callable, hooks: Hooks, state: LoopState) -> LoopState:
    """Run optimizer steps until ``settings.steps`` or a requested stop; returns the state reached."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    while state.step < settings.steps and not hooks.stop_requested():
        hooks.before_step(state.step + 1)
        started = time.perf_counter()
        rows = stream.next_step(state.micro_batch * state.accumulation)
        while True:
            try:
                step_loss, tokens = _accumulate(model, stream.micro_batches(rows, state.micro_batch), device,
                                                hooks, state.step + 1)
                break
            except torch.OutOfMemoryError:
                optimizer.zero_grad(set_to_none=True)
                _recover_from_oom(state, settings, emit)
        if not math.isfinite(step_loss):
            raise BackpropError("RUNTIME_TRAINING_DIVERGED", loss=step_loss, step=state.step + 1,
                                learning_rate=settings.learning_rate)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        state.step += 1
        state.losses.append(step_loss)
        state.learning_rates.append(lr)
        state.tokens += tokens
        state.seconds += time.perf_counter() - started
        tokens_per_s = state.tokens / state.seconds if state.seconds else 0.0
        eta = (settings.steps - state.step) * state.seconds / max(1, len(state.losses))
        emit(events.Progress(step=state.step, total=settings.steps, loss=round(step_loss, 6), lr=lr,
                             tokens_per_s=round(tokens_per_s, 1), eta_s=round(eta, 1),
                             grad_norm=round(grad_norm, 6)))
        hooks.after_step(state)
    return state


def _accumulate(model, micro_batches: list[Batch], device, hooks: Hooks, step: int) -> tuple[float, int]:
    """Forward and backward over one step's micro-batches; returns (loss, real tokens)."""
    # Normalise by the step's target tokens, not per micro-batch, so every token weighs the
    # same however the step is split (which is what keeps OOM recovery exact).
    targets = max(1, sum(b.target_tokens for b in micro_batches))
    step_loss = 0.0
    for batch in micro_batches:
        hooks.before_micro_batch(step)
        loss = token_losses(model, batch, device).sum() / targets
        loss.backward()
        step_loss += loss.item()
    return step_loss, sum(b.real_tokens for b in micro_batches)


def _recover_from_oom(state: LoopState, settings: TrainingSettings, emit: Callable) -> None:
    """Halve the micro-batch and double accumulation, keeping the rows per step; or give up."""
    step = state.step + 1
    if (not settings.oom_recovery or len(state.oom_adjustments) >= MAX_OOM_ADJUSTMENTS
            or state.micro_batch % 2):
        raise BackpropError("RUNTIME_GPU_OOM", step=step)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    state.micro_batch //= 2
    state.accumulation *= 2
    adjustment = {"step": step, "micro_batch": state.micro_batch, "gradient_accumulation": state.accumulation}
    state.oom_adjustments.append(adjustment)
    emit(events.Warning(code="oom_recovered", message=f"out of memory at step {step}: micro-batch "
                        f"{state.micro_batch}, gradient accumulation {state.accumulation}; same rows per step"))
