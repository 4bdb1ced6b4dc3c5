"""Fault injection, for tests only: make a run meet an OOM, heat, a full disk or a kill on cue.

Set BACKPROP_FAULTS to a JSON object (never set in normal use; a run that reads
it says so in a ``fault_injection`` warning event):

    {"oom_at_steps": [3, 5]}          CUDA-style out-of-memory in the first micro-batch of these steps
    {"kill_at_step": 4}               SIGKILL this process right after optimizer step 4, before any checkpoint
    {"disk_full_at_checkpoint": 4}    ENOSPC halfway through writing the checkpoint of step 4
    {"temperatures": [70, 90, 88, 72]} GPU temperature readings, one per sample, instead of NVML
    {"raise_at_step": [2, "message"]} a RuntimeError with that message at step 2
    {"power_cut": POINT}              SIGKILL the host and this stage together, as a power cut would, at
                                      "step:N" (step N's second micro-batch), "checkpoint:N" (halfway
                                      through writing checkpoint N), "adapter" (halfway through writing
                                      the final adapter), "merge" (after the first merged shard),
                                      "convert" (while llama.cpp's converter runs, once its
                                      output file has its first bytes) or "gguf" (after the
                                      conversion, before quantizing)
    {"hang": "step:N"}                at step N's second micro-batch, ignore SIGINT and SIGTERM and never
                                      return: a stage stuck where its signals are not heard (a chat template
                                      that loops, a C call)

A power cut kills the host's process group and the stage's own (the local runtime starts the
stage in a session of its own), so the host must lead its process group: start it with
``start_new_session=True``, or the group killed is the caller's.
"""

import errno
import json
import os
import signal
import threading
import time

ENV = "BACKPROP_FAULTS"


class Faults:
    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self._oom_left = set(plan.get("oom_at_steps", []))
        self._micro_batches: dict[int, int] = {}

    @classmethod
    def from_env(cls) -> "Faults":
        return cls(json.loads(os.environ.get(ENV) or "{}"))

    @property
    def active(self) -> bool:
        return bool(self.plan)

    def before_micro_batch(self, step: int) -> None:
        self._micro_batches[step] = self._micro_batches.get(step, 0) + 1
        if self._micro_batches[step] == 2:
            self.power_cut(f"step:{step}")
            self.hang(f"step:{step}")
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
        self.power_cut(f"checkpoint:{step}")
        if self.plan.get("disk_full_at_checkpoint") == step:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", str(path))

    def power_cut(self, point: str) -> None:
        if self.plan.get("power_cut") != point:
            return
        host_group = os.getpgid(os.getppid())
        if host_group != os.getpgid(0):
            os.killpg(host_group, signal.SIGKILL)
        os.killpg(0, signal.SIGKILL)

    def hang(self, point: str) -> None:
        if self.plan.get("hang") != point:
            return
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(3600)

    def power_cut_once_written(self, point: str, path) -> None:
        """Cut the power from a watcher thread once ``path`` has its first bytes: mid-write of another process."""
        if self.plan.get("power_cut") != point:
            return

        def watch() -> None:
            while not (os.path.exists(path) and os.path.getsize(path) > 0):
                time.sleep(0.01)
            self.power_cut(point)

        threading.Thread(target=watch, daemon=True).start()

    def temperatures(self) -> list[float] | None:
        return self.plan.get("temperatures")
