"""How a multi-run campaign carries its LoRA from one run to the next, declared once.

`multi-run --merge`, the API's ``merge=``, the web UI's choice, the plan's check, the run spec's type and the
train stage's equations (stages/.../train/slao.py) all read this table. SLAO is Qiao & Mahdavi 2025, "Merge
before Forget": run i >= 2 starts from an orthonormal basis of run i-1's A and run i-1's B, and after each run
the campaign's B is merged as B_merge,i = B_merge,i-1 + lambda(i) (B_ft,i - B_merge,i-1). Its two ablations
change one of those parts each, so that a benchmark can tell which part keeps what.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Merge:
    name: str
    help: str
    orthonormal_start: bool  # run i >= 2 starts A from the orthonormal basis of run i-1's A (QR), not A itself
    merge_power: float | None  # lambda(i) = 1 / i**merge_power; None: no merge, the newest adapter is deployed

    def weight(self, i: int) -> float | None:
        """lambda(i), the weight of run i's B in the campaign's merge (1 for the first run); None without a merge."""
        if i < 1:
            raise ValueError(f"runs count from 1, got {i}")
        return None if self.merge_power is None else 1.0 / math.pow(i, self.merge_power)


MERGES = {merge.name: merge for merge in (
    Merge("slao", "orthogonal start and a time-aware merge after every run, lambda(i) = 1/sqrt(i) (the paper's)",
          orthonormal_start=True, merge_power=0.5),
    Merge("none", "the same adapter trained on from run to run (sequential LoRA)",
          orthonormal_start=False, merge_power=None),
    Merge("slao-no-qr", "SLAO's merge without its orthogonal start: run i starts from run i-1's A as it is "
          "(an ablation)", orthonormal_start=False, merge_power=0.5),
    Merge("slao-mean", "SLAO with lambda(i) = 1/i: the merged B is the mean of every run's B (an ablation)",
          orthonormal_start=True, merge_power=1.0),
)}
MERGE_NAMES = tuple(MERGES)


def merge_help() -> str:
    """The --merge choices with what each does, for a command's help."""
    return "; ".join(f"{merge.name}: {merge.help}" for merge in MERGES.values())
