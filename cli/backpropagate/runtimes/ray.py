"""The Ray runtime: the same stage program on a Ray cluster, as the workers of Ray Train's ``TorchTrainer``.

Each Ray worker starts ``python -m backpropagate_stages.<stage> --spec ...`` as its own child, with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` taken from Ray's worker
group (rank 0's node, and a port rank 0 chose), so the stage trains data-parallel exactly as under
torchrun (stages/backpropagate_stages/train/distributed.py). Rank 0's event lines travel back through
a small actor, the run's channel, to this process's ``on_event``: the terminal, the history, the
trackers and the web UI see a Ray run like any run. Stop requests travel the other way.

A worker that is lost (its process killed, its node gone) makes Ray restart the whole worker group,
up to ``--ray-max-failures`` times; every rank of a restart resumes from the run's newest checkpoint,
the stage's own, in the run folder. That folder, and Ray's own run state under it, must be a path
every node reaches at the same place (a shared file system). Ray is an optional extra: nothing here
imports it until a run starts.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.errors import EXIT_INTERRUPTED, BackpropError
from backpropagate.contract.events import HOST, Envelope, EventParseError, parse_line
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.specs import spec_data, write_spec_data
from backpropagate.contract.stages import HOST_WATCH_VARIABLE, WORKERS_RESTARTED, stage_named
from backpropagate.runtimes.base import StageExit, first_missing
from backpropagate.runtimes.launch import stage_environment
from backpropagate.runtimes.stopping import STOP_GRACE_S, Stopper

log = logging.getLogger("backpropagate.runtime")

# What the host needs to drive a run: Ray Train, and torch for its TorchTrainer.
STACK = ("ray", "torch")
POLL_S = 0.2  # how often the host collects events, and each worker looks for a stop request
ENDING = ("error", "finished")  # rank 0 holds these until it knows whether Ray restarts the attempt


class RayRuntime:
    """Asked for by name only (`auto` never picks it): a cluster is the user's choice."""

    name = "ray"
    answers = "Ray Train imports here"
    absent = "Ray is not installed"

    @classmethod
    def from_settings(cls, settings=None, note=None) -> "RayRuntime":
        if settings is None:
            return cls()
        return cls(address=settings.ray_address, workers=settings.workers, max_failures=settings.ray_max_failures,
                   stop_grace_s=settings.stop_grace_s)

    def __init__(self, address: str = "", workers: int = 1, max_failures: int = 1,
                 stop_grace_s: float = STOP_GRACE_S, stack: tuple[str, ...] = STACK) -> None:
        self.stack = stack
        self.address = address  # empty: RAY_ADDRESS, else a Ray cluster started here for the run
        self.workers = workers
        self.max_failures = max_failures
        self.stop_grace_s = stop_grace_s

    def check(self) -> None:
        missing = first_missing(self.stack)
        if missing:
            raise BackpropError("DEP_RAY_MISSING", package=missing, reason=f"not installed for {sys.executable}")

    def run(self, stage: str, spec_path: Path, on_event: Callable[[Envelope], None]) -> StageExit:
        self.check()
        import ray

        data = spec_data(spec_path)  # with its secrets: the workers write the spec again where they run
        workers = self.workers if stage_named(stage).data_parallel else 1
        _connect(ray, self.address)
        try:
            channel = ray.remote(num_cpus=0)(Channel).remote()
            fitting = _Fit(self._trainer(stage, data, workers, channel))
            follower = _Follower(data.get("run_id", ""), stage, workers, self.max_failures,
                                 RunFolder(Path(data["run_dir"])).log, on_event)
            stopper = Stopper(lambda name: channel.stop.remote(name), self.stop_grace_s)
            try:
                with stopper.listening():
                    fitting.start()
                    while fitting.is_alive():
                        follower.hand_over(ray.get(channel.take.remote()))
                        fitting.join(POLL_S)
                    follower.hand_over(ray.get(channel.take.remote()))
            finally:
                stopper.close()
            stopper.end_if_overdue(stage, spec_path, on_event)
            return follower.exit(fitting.error, self.max_failures)
        finally:
            ray.shutdown()  # disconnects from a cluster given by address; stops one started here

    def _trainer(self, stage: str, data: dict, workers: int, channel):
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        use_gpu = _use_gpu(stage, data, workers)
        run_dir = Path(data["run_dir"])
        return TorchTrainer(
            run_stage,
            train_loop_config={"stage": stage, "spec": data, "channel": channel},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": 1, **({"GPU": 1} if use_gpu else {})}),
            # Ray keeps its run state in the run folder, which every worker reaches (the workspace is shared).
            run_config=RunConfig(name=f"ray-{stage}", storage_path=str(run_dir),
                                 failure_config=FailureConfig(max_failures=self.max_failures)),
        )


def _connect(ray, address: str) -> None:
    # What the workers print stays in Ray's logs and the stage's log.txt, never on this terminal (whose stdout,
    # with --json, carries events only).
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(include_dashboard=False, **options)
    except ConnectionError as refused:
        cause = refused.__cause__ or refused
        raise BackpropError("RUNTIME_RAY_UNREACHABLE", address=address or os.environ.get("RAY_ADDRESS", "here"),
                            reason=_first_line(cause)) from None


def _use_gpu(stage: str, data: dict, workers: int) -> bool:
    """One GPU a worker where the stage wants GPUs and the cluster has one for each worker (``auto``), or was
    told to (``cuda``: Ray then waits for GPUs, as it would for any resource it lacks)."""
    if not stage_named(stage).data_parallel:
        return False
    device = data.get("training", {}).get("device", "auto")
    if device == "cuda":
        return True
    import ray

    return device == "auto" and ray.cluster_resources().get("GPU", 0) >= workers


class _Fit(threading.Thread):
    """``trainer.fit()`` off the main thread, which meanwhile hands events over and takes the stop signals."""

    def __init__(self, trainer) -> None:
        super().__init__(name="ray-fit", daemon=True)
        self.trainer = trainer
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.trainer.fit()
        except BaseException as error:  # read by the main thread once this one ends
            self.error = error


class _Follower:
    """The host's side of the channel: rank 0's lines to ``on_event``, each attempt after the first told as a
    restart."""

    def __init__(self, run_id: str, stage: str, workers: int, max_failures: int, log: Path,
                 on_event: Callable[[Envelope], None]) -> None:
        self.run_id, self.stage, self.workers, self.max_failures, self.log = run_id, stage, workers, max_failures, log
        self.on_event = on_event
        self.attempts = 0
        self.code: int | None = None  # the stage's exit code on rank 0, once its attempt is the last
        self.lost: list[str] = []  # why each attempt that Ray restarted ended, where rank 0 could tell

    def hand_over(self, items: list) -> None:
        for kind, value in items:
            if kind == "attempt":
                self.attempts = value
                if value > 1:
                    self._restarted()
            elif kind == "lost":
                self.lost.append(value)
            elif kind == "exit":
                self.code = value
            else:
                try:
                    self.on_event(parse_line(value))
                except EventParseError as exc:
                    log.debug("stage printed a non-event line (%s): %s", exc, value.rstrip())

    def _restarted(self) -> None:
        why = self.lost[-1] if len(self.lost) >= self.attempts - 1 else "a worker was lost"
        message = (f"{why}; Ray restarted the {self.workers} workers (restart {self.attempts - 1} of at most "
                   f"{self.max_failures}), and each resumes from the newest checkpoint")
        warning = events.Warning(code=WORKERS_RESTARTED, message=message)
        self.on_event(Envelope(run_id=self.run_id, stage=HOST, event=warning))

    def exit(self, error: BaseException | None, max_failures: int) -> StageExit:
        if error is None:
            return StageExit(code=self.code if self.code is not None else 1, stderr_tail="")
        from ray.train import WorkerGroupError

        if isinstance(error, WorkerGroupError):
            reasons = "; ".join(f"rank {rank}: {_first_line(failure)}"
                                for rank, failure in sorted(error.worker_failures.items()))
            raise BackpropError("RUNTIME_WORKER_LOST", stage=self.stage, reason=reasons or _first_line(error),
                                restarts=max_failures, runtime="ray", run_id=self.run_id, log=self.log) from None
        return StageExit(code=1, stderr_tail=f"Ray Train: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class Channel:
    """The run's channel, a Ray actor: rank 0's items for the host, and the host's stop requests for every rank.

    Items are ``(kind, value)``: ``("line", event line)``, ``("attempt", n)`` when a (re)start begins,
    ``("lost", why)`` when rank 0 ends an attempt for Ray to restart, ``("exit", code)`` when it ends the last.
    """

    def __init__(self) -> None:
        self.items: list = []
        self.attempts = 0
        self.signals: list[str] = []

    def begin(self) -> int:
        self.attempts += 1
        self.items.append(("attempt", self.attempts))
        return self.attempts

    def put(self, items: list) -> None:
        self.items.extend(items)

    def take(self) -> list:
        taken, self.items = self.items, []
        return taken

    def stop(self, name: str) -> None:
        self.signals.append(name)

    def signals_after(self, seen: int) -> list[str]:
        return self.signals[seen:]


def run_stage(config: dict) -> None:
    """One Ray worker: run the stage program as this rank, pass rank 0's events on, and raise for Ray to restart
    the attempt when the stage was lost rather than finished (killed, or failed with no coded reason)."""
    import ray
    import torch.distributed as dist
    from ray import train

    context = train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    channel = config["channel"]
    # Ray's own process group is up: rank 0 names the stage's (its node, a free port) and the attempt.
    plan = [{"address": os.environ.get("MASTER_ADDR", "127.0.0.1"), "port": _free_port(),
             "attempt": ray.get(channel.begin.remote())} if rank == 0 else None]
    if size > 1:
        dist.broadcast_object_list(plan, src=0)
    plan = plan[0]
    with tempfile.TemporaryDirectory(prefix="backprop-ray-") as folder:
        spec_path = Path(folder) / "spec.json"
        # A restart resumes from the newest checkpoint, as `backprop resume` would.
        write_spec_data({**config["spec"], "resume": config["spec"].get("resume") or plan["attempt"] > 1}, spec_path)
        environment = {**stage_environment(dict(os.environ)), "RANK": str(rank), "WORLD_SIZE": str(size),
                       "LOCAL_RANK": str(context.get_local_rank()),
                       "LOCAL_WORLD_SIZE": str(context.get_local_world_size()),
                       "MASTER_ADDR": plan["address"], "MASTER_PORT": str(plan["port"]),
                       "PYTHONUNBUFFERED": "1", HOST_WATCH_VARIABLE: "stdin"}
        code, ending, asked, tail = _stage_process(config["stage"], spec_path, environment, channel, rank == 0)
    lost = not asked and code not in (0, EXIT_INTERRUPTED) and _uncoded(ending)
    if lost:
        why = f"rank {rank}'s stage ended with exit code {code}: {tail or 'no output'}"
        if rank == 0:
            ray.get(channel.put.remote([("lost", why)]))
        raise RuntimeError(why)
    if rank == 0:
        ray.get(channel.put.remote([("line", line) for line in ending] + [("exit", code)]))


def _stage_process(stage: str, spec_path: Path, environment: dict, channel, speaks: bool):
    """Run the stage to its end: (exit code, its held ending lines, whether a stop was asked, its last stderr)."""
    process = subprocess.Popen([sys.executable, "-m", f"backpropagate_stages.{stage}", "--spec", str(spec_path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               encoding="utf-8", errors="replace", bufsize=1, start_new_session=True, env=environment)
    stderr_tail: deque[str] = deque(maxlen=5)
    threading.Thread(target=lambda: stderr_tail.extend(process.stderr), daemon=True).start()
    stops = _StopWatch(process, channel)
    stops.start()
    ending: list[str] = []
    try:
        for line in process.stdout:
            if not speaks:
                continue
            if _event_name(line) in ENDING:
                ending.append(line)  # told only once this attempt is known to be the last
            else:
                channel.put.remote([("line", line)])  # actor calls from one caller run in order
        code = process.wait()
    finally:
        stops.done.set()
        process.stdin.close()
    tail = " | ".join(line.strip() for line in stderr_tail if line.strip())
    return code, ending, stops.asked, tail


def _uncoded(ending: list[str]) -> bool:
    """The stage ended with no error of its own, or with the catch-all RUNTIME_STAGE_FAILED (a peer that vanished
    mid-collective shows so): a worker's loss, for Ray to restart; a coded error is the run's answer."""
    for line in ending:
        try:
            event = parse_line(line).event
        except EventParseError:
            continue
        if isinstance(event, events.Error):
            return event.code == "RUNTIME_STAGE_FAILED"
    return True


def _event_name(line: str) -> str | None:
    try:
        return json.loads(line).get("event")
    except (ValueError, AttributeError):
        return None


class _StopWatch(threading.Thread):
    """Passes the host's stop requests to this worker's stage: SIGINT, or SIGKILL to its whole session."""

    def __init__(self, process: subprocess.Popen, channel) -> None:
        super().__init__(name="stage-stop-watch", daemon=True)
        self.process, self.channel = process, channel
        self.done = threading.Event()
        self.asked = False
        self.seen = 0

    def run(self) -> None:
        import ray

        while not self.done.wait(POLL_S):
            for name in ray.get(self.channel.signals_after.remote(self.seen)):
                self.seen += 1
                self.asked = True
                _signal(self.process, name)


def _signal(process: subprocess.Popen, name: str) -> None:
    if process.poll() is not None:
        return
    try:
        if name == "SIGKILL":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(getattr(signal, name))
    except ProcessLookupError:  # it ended meanwhile
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]
