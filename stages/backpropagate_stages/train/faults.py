"""Fault injection, for tests only: make a run meet an OOM, heat, a full disk or a kill on cue.

Set BACKPROP_FAULTS to a JSON object (never set in normal use; a run that reads
it says so in a ``fault_injection`` warning event):

    {"oom_at_steps": [3, 5]}          CUDA-style out-of-memory in the first micro-batch of these steps
    {"kill_at_step": 4}               SIGKILL this process right after optimizer step 4, before any checkpoint
    {"disk_full_at_checkpoint": 4}    ENOSPC halfway through writing the checkpoint of step 4
    {"temperatures": [70, 90, 88, 72]} GPU temperature readings, one per sample, instead of NVML
    {"raise_at_step": [2, "message"]} a RuntimeError with that message at step 2
"""

import errno
import json
import os
import signal

ENV = "BACKPROP_FAULTS"


class Faults:
    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self._oom_left = set(plan.get("oom_at_steps", []))

    @classmethod
    def from_env(cls) -> "Faults":
        return cls(json.loads(os.environ.get(ENV) or "{}"))

    @property
    def active(self) -> bool:
        return bool(self.plan)

    def before_micro_batch(self, step: int) -> None:
        if step in self._oom_left:
            self._oom_left.discard(step)
            import torch

            raise torch.OutOfMemoryError(f"injected out-of-memory at step {step}")
        raise_at = self.plan.get("raise_at_step")
        if raise_at and raise_at[0] == step:
            raise RuntimeError(raise_at[1])

    def after_step(self, step: int) -> None:
        if self.plan.get("kill_at_step") == step:
            os.kill(os.getpid(), signal.SIGKILL)

    def during_checkpoint(self, step: int, path) -> None:
        if self.plan.get("disk_full_at_checkpoint") == step:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", str(path))

    def temperatures(self) -> list[float] | None:
        return self.plan.get("temperatures")
