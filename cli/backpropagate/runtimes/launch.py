"""The command that starts a stage program: alone, or under torchrun when it trains data-parallel.

torchrun (``torch.distributed.run``) starts ``workers`` copies of the stage on this machine and
gives each its rank; the stage does the rest (stages/backpropagate_stages/train/distributed.py).
The local runtime runs this command here, the docker runtime inside one container.
"""

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
