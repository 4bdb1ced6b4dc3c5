"""The training loop: AdamW on the adapter's weights, warmup then decay, gradient accumulation.

A plain loop rather than a framework trainer: it is short enough to read, and
with packing and no padding waste it is where the speed comes from
(``scripts/bench_train.py`` measures it against TRL's SFTTrainer). Under torchrun each rank
runs this same loop on its share of every step's rows (distributed.py).
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
from backpropagate_stages.train.distributed import World


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
               emit: Callable, hooks: Hooks, state: LoopState, world: World = World()) -> LoopState:
    """Run optimizer steps until ``settings.steps`` or a requested stop; returns the state reached."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    # The stop is decided together, so every rank ends after the same step.
    while state.step < settings.steps and not world.anyone(hooks.stop_requested()):
        hooks.before_step(state.step + 1)
        started = time.perf_counter()
        rows = stream.next_step(state.micro_batch * state.accumulation)  # the global batch, the same on every rank
        first, mine = world.share(rows)
        while True:
            out_of_memory = False
            try:
                step_loss, tokens = _accumulate(model, stream, mine, first, state.micro_batch, device, hooks,
                                                state.step + 1, settings.seed, world)
            except torch.OutOfMemoryError:
                out_of_memory = True
            if not world.anyone(out_of_memory):
                break
            optimizer.zero_grad(set_to_none=True)
            _recover_from_oom(state, settings, emit)  # on every rank: one rank's OOM halves them all
        step_loss, tokens = world.total(step_loss), int(world.total(tokens))
        world.sum_gradients(params)
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


def _accumulate(model, stream: BatchStream, rows: list[int], first: int, micro_batch: int, device, hooks: Hooks,
                step: int, seed: int, world: World) -> tuple[float, int]:
    """Forward and backward over this rank's micro-batches of one step; returns (its loss, its real tokens)."""
    micro_batches = stream.micro_batches(rows, micro_batch)
    # Normalise by the step's target tokens on all ranks, not per micro-batch, so every token weighs
    # the same however the step is split (which is what keeps OOM recovery and data parallelism exact).
    targets = max(1, int(world.total(sum(b.target_tokens for b in micro_batches))))
    step_loss = 0.0
    for index, batch in enumerate(micro_batches):
        hooks.before_micro_batch(step)
        # Dropout draws from a seed of the rows' place in the step, not from how many draws came before,
        # so a micro-batch gets the same masks on whichever rank it lands.
        torch.manual_seed(micro_batch_seed(seed, step, first + index * micro_batch))
        loss = token_losses(model, batch, device).sum() / targets
        loss.backward()
        step_loss += loss.item()
    return step_loss, sum(b.real_tokens for b in micro_batches)


def micro_batch_seed(seed: int, step: int, first_row: int) -> int:
    return ((seed * 1_000_003 + step) * 65_537 + first_row) % (1 << 63)


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
