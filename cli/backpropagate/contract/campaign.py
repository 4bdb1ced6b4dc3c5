"""A multi-run campaign's folder and its plan, campaign.json: what every run of it trains on, and how.

    <output>/<campaign_id>/campaign.json      the plan: model, merge, settings, each run's data
    <output>/<campaign_id>/data/run-<i>.jsonl each run's rows (drawn from one file, or copied from its file),
                                              then, under --replay, the rows it replays from earlier runs
    <output>/<campaign_id>/data/run-<i>.replayed.json   which of those rows are replayed, and from where
    <output>/<campaign_id>/data/run-<i>.held-out.jsonl  under --replay with --eval-split, the run's held-out rows,
                                              set aside before any row is replayed
    <output>/<campaign_id>/adapter/           the merged adapter after the newest completed run
    <output>/<campaign_id>/evals/after-<i>/on-<j>/   the merged adapter after run i, on run j's held-out data
    <output>/<campaign_id>/campaign.lock      held while a process runs the campaign

The runs themselves are ordinary run folders beside it, named in the campaign's history row.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.schema import from_dict, to_dict
from backpropagate.contract.settings import LoraSettings, TrainingSettings
from backpropagate.contract.specs import DataSpec, PromptsSpec


@dataclass(frozen=True)
class CampaignFolder:
    root: Path

    @classmethod
    def of(cls, output: Path, campaign_id: str) -> "CampaignFolder":
        return cls(Path(output) / campaign_id)

    @property
    def plan(self) -> Path:
        return self.root / "campaign.json"

    @property
    def holds_campaign(self) -> bool:
        return self.plan.exists()

    @property
    def data(self) -> Path:
        return self.root / "data"

    def run_data(self, index: int) -> Path:
        return self.data / f"run-{index}.jsonl"

    def run_held_out(self, index: int) -> Path:
        return self.data / f"run-{index}.held-out.jsonl"

    def run_replayed(self, index: int) -> Path:
        return self.data / f"run-{index}.replayed.json"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    def eval_dir(self, after: int, on: int) -> Path:
        return self.root / "evals" / f"after-{after}" / f"on-{on}"

    @property
    def lock(self) -> Path:
        return self.root / "campaign.lock"


@dataclass(frozen=True)
class CampaignPlan:
    campaign_id: str
    model: str
    merge: str  # a name of contract/merges.py
    runs: list  # one {"data": DataSpec, "eval_data": DataSpec | None, "eval_prompts": PromptsSpec | None} per run
    training: TrainingSettings  # every run's (steps is the steps of each run)
    lora: LoraSettings
    log_level: str
    data_format: str
    skip_invalid: bool
    drawing: str  # how each run's rows were chosen, for people
    key: str  # what `multi-run` compares to continue an unfinished campaign: model, data, split, merge, settings
    replay_fraction: float = 0.0  # replayed rows of earlier runs as a share of each run's own rows (--replay)


def write_plan(plan: CampaignPlan, path: Path) -> None:
    document = to_dict(plan) | {"runs": [{name: to_dict(value) if value is not None else None
                                           for name, value in run.items()} for run in plan.runs]}
    if not plan.replay_fraction:
        del document["replay_fraction"]  # a campaign without replay is written as before replay existed
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")


def read_plan(path: Path) -> CampaignPlan:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        runs = document.pop("runs")
        parsed = [{"data": from_dict(DataSpec, run["data"])[0],
                   "eval_data": from_dict(DataSpec, run["eval_data"])[0] if run.get("eval_data") else None,
                   "eval_prompts": from_dict(PromptsSpec, run["eval_prompts"])[0] if run.get("eval_prompts")
                   else None} for run in runs]
        document["training"] = from_dict(TrainingSettings, document["training"])[0]
        document["lora"] = from_dict(LoraSettings, document["lora"])[0]
        return CampaignPlan(runs=parsed, **document)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackpropError("CONFIG_SPEC_INVALID", path=path, problems=f"not a campaign plan ({exc})") from None


def campaign_matrix(evals: list[dict], runs: int) -> dict:
    """The campaign's figures as matrices, row i after run i+1, column j on run j+1's held-out prompts and data
    (None: not measured; a campaign measures j <= i): ``accuracy`` is the share of run j+1's prompts answered
    right, ``hits`` the same as "right/asked", ``eval_loss`` the held-out loss. From the accuracy's last row,
    ``acc`` is its mean over every run and ``bwt`` the mean change from a[j][j] to a[last][j] over the earlier
    runs (backward transfer: below 0 is forgetting); both None until the last row is measured."""
    accuracy = [[None] * runs for _ in range(runs)]
    hits = [[None] * runs for _ in range(runs)]
    eval_loss = [[None] * runs for _ in range(runs)]
    for figures in evals:
        i, j = figures["after_run"] - 1, figures["on_run"] - 1
        if not (0 <= i < runs and 0 <= j < runs):
            continue
        counted = figures.get("hits") or {}
        if counted.get("expected"):
            accuracy[i][j] = round(counted["fine_tune"] / counted["expected"], 4)
            hits[i][j] = f"{counted['fine_tune']}/{counted['expected']}"
        eval_loss[i][j] = figures.get("eval_loss")
    last = accuracy[-1] if runs else []
    complete = bool(last) and all(value is not None for value in last)
    acc = round(sum(last) / len(last), 4) if complete else None
    bwt = None
    if complete and runs > 1 and all(accuracy[j][j] is not None for j in range(runs - 1)):
        bwt = round(sum(last[j] - accuracy[j][j] for j in range(runs - 1)) / (runs - 1), 4)
    return {"accuracy": accuracy, "hits": hits, "eval_loss": eval_loss, "acc": acc, "bwt": bwt}
