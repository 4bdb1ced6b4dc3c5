"""The model card (README.md) the Hub shows: front matter it reads, and how the model was made and is used."""

import json
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.campaign import CampaignPlan
from backpropagate.contract.merges import MERGES
from backpropagate.contract.records import RunRecord
from backpropagate.contract.schema import to_dict

PLOT_FILE = "loss.png"


@dataclass(frozen=True)
class CampaignCard:
    """What a campaign's card tells besides its row: its plan and its runs, in order."""
    plan: CampaignPlan
    runs: list[RunRecord]


def is_hub_id(model: str) -> bool:
    """A Hub id is OWNER/NAME (or NAME); a local path never goes into base_model."""
    return bool(model) and not Path(model).expanduser().exists() and not model.startswith((".", "/", "~")) \
        and model.count("/") <= 1 and "\\" not in model


def model_card(repo: str, what: str, record: RunRecord | None, plot: bool, files: list[str],
               campaign: CampaignCard | None = None) -> str:
    spec = record.spec if record else {}
    base = campaign.plan.model if campaign else spec.get("model", "")
    front = []
    if is_hub_id(base):
        front.append(f"base_model: {base}")
    if what == "adapter":
        front.append("library_name: peft")
    front += ["pipeline_tag: text-generation", "tags:", "- backpropagate"]
    front += ["- lora"] if what == "adapter" else []
    front += ["- gguf"] if what == "gguf" else []
    lines = ["---", *front, "---", "", f"# {repo.split('/')[-1]}", ""]
    kind = {"adapter": "A LoRA adapter", "merged": "A model with a LoRA adapter merged in", "gguf": "GGUF files"}[what]
    lines.append(f"{kind}, fine-tuned with [backpropagate](https://pypi.org/project/backpropagate/)"
                 + (f" from `{base}`." if is_hub_id(base) else " from a local base model." if base else "."))
    if record and campaign:
        lines += ["", "## Training", "", *_campaign_training(record, campaign)]
    elif record:
        lines += ["", "## Training", "", *_training(record)]
        if plot:
            lines += ["", f"![training loss and learning rate]({PLOT_FILE})"]
    lines += ["", "## Use", "", *_usage(repo, what, base, files)]
    return "\n".join(lines) + "\n"


def _training(record: RunRecord) -> list[str]:
    spec, row = record.spec, record.row
    training, lora = spec.get("training", {}), spec.get("lora", {})
    rows = [("run id", row.run_id), ("data sha256", spec.get("data", {}).get("sha256", "")),
            ("steps", row.steps_done), ("final loss", row.final_loss)]
    if record.quality and record.quality.eval_loss:
        rows += [("held-out loss, before and after", f"{record.quality.eval_loss[0][1]:.4f} -> "
                                                     f"{record.quality.eval_loss[-1][1]:.4f}")]
    rows += [(f"lora.{key}", value) for key, value in lora.items() if value is not None]
    rows += [(f"training.{key}", value) for key, value in training.items()]
    return ["| setting | value |", "| --- | --- |", *(f"| {key} | `{json.dumps(value)}` |" for key, value in rows)]


def _campaign_training(record: RunRecord, campaign: CampaignCard) -> list[str]:
    plan, runs = campaign.plan, campaign.runs
    merge = MERGES[plan.merge]
    merged = merge.merge_power is not None
    lines = [f"Trained as a campaign of {len(runs)} runs (campaign `{record.row.run_id}`) with merge `{merge.name}`, "
             f"{merge.help}: each run continues the one before it in one LoRA"
             + (", merged after each run with its weight λ." if merged else "."), "",
             "| run | run id | data sha256 | steps | loss, first and last | λ |",
             "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        curve = [run.losses[s] for s in sorted(run.losses)]
        span = f"{curve[0]:.4f} -> {curve[-1]:.4f}" if curve else ""
        weight = f"{run.row.merge_lambda:.4f}" if run.row.merge_lambda is not None else ""
        sha = run.spec.get("data", {}).get("sha256", "")
        lines.append(f"| {run.row.campaign_index} | `{run.row.run_id}` | `{sha}` | {run.row.steps_done or 0} "
                     f"| {span} | {weight} |")
    if record.row.campaign_evals:
        lines += ["", "Held-out figures of the merged adapter after each run, on each earlier run's held-out data:", "",
                  "| after run | on run | figures |", "| --- | --- | --- |"]
        lines += [f"| {e['after_run']} | {e['on_run']} | " + ", ".join(f"{k} {v}" for k, v in e.items()
                                                                      if k not in ("after_run", "on_run")) + " |"
                  for e in record.row.campaign_evals]
    settings = [(f"lora.{key}", value) for key, value in to_dict(plan.lora).items() if value is not None]
    settings += [(f"training.{key}", value) for key, value in to_dict(plan.training).items()]
    lines += ["", "Every run's settings:", "", "| setting | value |", "| --- | --- |",
              *(f"| {key} | `{json.dumps(value)}` |" for key, value in settings)]
    return lines


def _usage(repo: str, what: str, base: str, files: list[str]) -> list[str]:
    if what == "adapter":
        base_name = base if is_hub_id(base) else "BASE_MODEL"
        where = [] if is_hub_id(base) else ["# BASE_MODEL: the base this adapter was trained on (a local folder here)"]
        return ["```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                "", *where, f'base = AutoModelForCausalLM.from_pretrained("{base_name}")',
                f'model = PeftModel.from_pretrained(base, "{repo}")',
                f'tokenizer = AutoTokenizer.from_pretrained("{base_name}")', "```"]
    if what == "merged":
        return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                f'model = AutoModelForCausalLM.from_pretrained("{repo}")',
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")', "```"]
    ggufs = [name for name in files if name.endswith(".gguf")]
    first = ggufs[0] if ggufs else "model.gguf"
    return ["```sh", f"hf download {repo} {first} --local-dir .",
            f"llama-cli -m {first} -cnv", "", f"ollama run hf.co/{repo}" + (f":{first.split('-')[-1][:-5]}"
                                                                             if "-" in first else ""), "```"]
