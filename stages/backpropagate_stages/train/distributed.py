"""Data parallelism for the train stage: what each rank trains on, and what the ranks agree on.

Started by torchrun (or Ray Train, or a Kubeflow TrainJob) with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set, the stage joins a process group (nccl
on CUDA, gloo on CPU). Without them it is a world of one, and every call here is free.

An optimizer step's rows are the same whatever the number of ranks (micro-batch x
accumulation, the global batch); each rank takes a contiguous share of them. Every rank
divides its token losses by the step's *global* count of target tokens, and the gradients are
summed, not averaged, across ranks: the sum is then exactly the one-worker gradient. With equal
gradients and the same optimizer, the adapters on every rank stay equal without broadcasting
weights.
"""

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that emits events and writes checkpoints and the adapter."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, rows: list[int]) -> tuple[int, list[int]]:
        """This rank's contiguous part of a step's rows, and where it starts among them."""
        per, extra = divmod(len(rows), self.size)
        start = self.rank * per + min(self.rank, extra)
        return start, rows[start: start + per + (self.rank < extra)]

    def total(self, value: float) -> float:
        """The sum of ``value`` over all ranks."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())

    def anyone(self, flag: bool) -> bool:
        """True on every rank when it is true on any: one rank's decision (stop, OOM) is every rank's."""
        return self.total(1.0 if flag else 0.0) > 0

    def sum_gradients(self, params: list[torch.Tensor]) -> None:
        """Sum the gradients of ``params`` across ranks, in one collective."""
        if not self.distributed:
            return
        for p in params:
            if p.grad is None:  # a rank with no rows this step adds nothing
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        at = 0
        for p in params:
            p.grad.copy_(flat[at: at + p.numel()].view_as(p.grad))
            at += p.numel()

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def join(device_type: str) -> World:
    """The world this process was started in: a process group when WORLD_SIZE > 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if world.distributed and not torch.distributed.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(world.local_rank)
        # Gloo collectives move CPU tensors: the step's loss sums and flags are reduced on the CPU even on nccl.
        backend = "cuda:nccl,cpu:gloo" if device_type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return world

