"""The command that starts a stage program: alone, or under torchrun when it trains data-parallel.

torchrun (``torch.distributed.run``) starts ``workers`` copies of the stage on this machine and
gives each its rank; the stage does the rest (stages/backpropagate_stages/train/distributed.py).
The local runtime runs this command here, the docker runtime inside one container.
"""

import json
import re
import signal
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.events import Envelope
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.stages import stage_named

# On Ctrl-C torchrun passes the signal on, then waits this long before it kills the workers:
# time for every rank to finish its step and rank 0 to write its checkpoint.
SHUTDOWN_TIMEOUT_S = 600

# What makes a stage a rank of a process group. Inherited from a shell that has them (a job inside
# another torchrun or a Slurm step), they would make a single stage wait for peers that never come.
PROCESS_GROUP_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def stage_environment(environ: dict[str, str]) -> dict[str, str]:
    """The host's environment for a stage started here: no process group but the one torchrun makes."""
    return {name: value for name, value in environ.items() if name not in PROCESS_GROUP_VARIABLES}


def stage_command(stage: str, workers: int, python: str = "python") -> list[str]:
    """``python -m backpropagate_stages.<stage>``, under torchrun for ``workers`` > 1 (``--spec`` follows)."""
    module = f"backpropagate_stages.{stage}"
    if workers <= 1 or not stage_named(stage).data_parallel:
        return [python, "-m", module]
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}",
            f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}", "-m", module]


# torchrun's report of a worker that ended: "rank      : 1 (local_rank: 1)" then "exitcode  : -9 (pid: 1186)";
# a negative exit code is the signal that ended it.
_FAILURE = re.compile(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*-(\d+)")


def lost_worker(torchrun_stderr: str) -> str | None:
    """The worker torchrun reports ended by a signal (kill -9, the kernel's OOM killer), in words; else None. The
    SIGTERM torchrun itself sends the survivors is passed over for the signal that started it."""
    ended = []
    for rank, number in _FAILURE.findall(torchrun_stderr):
        try:
            ended.append((rank, signal.Signals(int(number)).name))
        except ValueError:
            ended.append((rank, f"signal {number}"))
    if not ended:
        return None
    rank, name = next((item for item in ended if item[1] not in ("SIGTERM", "SIGINT")), ended[0])
    return f"rank {rank} was ended by {name}"


class Ending:
    """Under torchrun, the stage's error and finished events wait for torchrun's own report: a worker ended by a
    signal makes the run's error RUNTIME_WORKER_LOST, where the ranks left only saw a peer vanish mid-collective
    (RUNTIME_STAGE_FAILED), or nobody spoke at all (rank 0 was the one killed)."""

    def __init__(self, stage: str, workers: int) -> None:
        self.holding = workers > 1 and stage_named(stage).data_parallel
        self.stage = stage
        self.held: list[Envelope] = []

    def hold(self, envelope: Envelope) -> bool:
        if self.holding and envelope.event.name in ("error", "finished"):
            self.held.append(envelope)
            return True
        return False

    def settle(self, torchrun_stderr: str, spec_path: Path, stopped: bool) -> list[Envelope]:
        """What ends the stage's events: those it held, or a lost worker's coded error (never after a stop request,
        whose last resort kills every worker)."""
        lost = lost_worker(torchrun_stderr) if self.holding and not stopped else None
        errors = [envelope.event for envelope in self.held if envelope.event.name == "error"]
        if lost is None or (errors and errors[0].code != "RUNTIME_STAGE_FAILED"):
            return self.held
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        error = BackpropError("RUNTIME_WORKER_LOST", stage=self.stage, reason=lost, restarts=0, runtime="local",
                              run_id=spec["run_id"], log=RunFolder(Path(spec["run_dir"])).log)
        return [Envelope(run_id=spec["run_id"], stage=self.stage, event=event)
                for event in (events.Error(code=error.code, message=error.message, fix=error.fix),
                              events.Finished(status="failed"))]
