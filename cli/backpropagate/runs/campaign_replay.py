"""Replay: rows of a campaign's earlier runs mixed into each later run's data file.

Run i (from run 2 on) trains on its own rows followed by ``floor(fraction x own rows + 0.5)`` rows of
runs 1 to i-1, shared evenly over them (the earliest take what does not divide). Each earlier run keeps a
buffer for replay: a seeded sample of at most REPLAY_ROWS_PER_RUN of its own rows, drawn once, so every
later run replays from the same buffer; run i draws its share of each buffer without replacement. The
stage shuffles a run's rows from its seed, so the replayed rows are not trained last.

Every draw is ``random.Random`` seeded with text built from --seed (text seeds are hashed with SHA-512, the
same in every process): the same seed gives the same rows, also when a campaign is resumed, since the
data files are written once, when the campaign is planned.
"""

import json
import math
import random
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.settings import REPLAY_ROWS_PER_RUN


def replayed_rows(parts: list[list[str]], fraction: float, seed: int) -> list[list[tuple[int, int]]]:
    """For each run, the rows it replays as (earlier run, line in that run's data file), both from 1."""
    kept = [sorted(random.Random(f"{seed}:replay-buffer:{run}").sample(range(len(rows)),
                                                                         min(REPLAY_ROWS_PER_RUN, len(rows))))
            for run, rows in enumerate(parts, start=1)]
    chosen: list[list[tuple[int, int]]] = [[]]
    for index in range(2, len(parts) + 1):
        wanted = math.floor(fraction * len(parts[index - 1]) + 0.5)
        earlier = index - 1
        draw = random.Random(f"{seed}:replay-draw:{index}")
        picked = []
        for run in range(1, index):
            share = wanted // earlier + (1 if run <= wanted % earlier else 0)
            buffer = kept[run - 1]
            picked += [(run, row + 1) for row in draw.sample(buffer, min(share, len(buffer)))]
        chosen.append(picked)
    return chosen


def write_replay_record(path: Path, fraction: float, seed: int, own_rows: int,
                        replayed: list[tuple[int, int]]) -> None:
    """The record beside a run's data file of which of its rows are replayed (``at_line``), and from where
    (``run``, ``line``), under the summary its history row keeps."""
    rows = [{"at_line": own_rows + position, "run": run, "line": line}
            for position, (run, line) in enumerate(replayed, start=1)]
    summary = {"fraction": fraction, "own_rows": own_rows, "rows": len(replayed),
               "from_runs": {str(run): sum(1 for r, _ in replayed if r == run)
                             for run in sorted({run for run, _ in replayed})}}
    document = summary | {"seed": seed, "buffer_rows_per_run": REPLAY_ROWS_PER_RUN, "replayed": rows}
    atomic_write_text(path, json.dumps(document, indent=1) + "\n")


def replay_summary(path: Path) -> dict | None:
    """What a run's history row keeps of its replay record: None when it replays nothing."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return {key: document[key] for key in ("fraction", "own_rows", "rows", "from_runs")}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackpropError("CONFIG_SPEC_INVALID", path=path, problems=f"not a replay record ({exc})") from None
