"""A campaign run's two ends: its adapter's start from the previous run, and the campaign's merge after it.

The equations are in slao.py; this module reads and writes the adapter folders around them.
"""

import shutil
from pathlib import Path

from backpropagate.contract import layout
from backpropagate.contract.files import publish_folder
from backpropagate.contract.merges import MERGES
from backpropagate.contract.specs import CampaignStep

from backpropagate_stages.train import slao

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def read_adapter(folder: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / ADAPTER_WEIGHTS))


def start_from_parent(lora_model, step: CampaignStep) -> None:
    """Load run i's starting weights (run i >= 2) into the freshly made LoRA model."""
    from peft import set_peft_model_state_dict

    start = slao.start_state(read_adapter(step.parent_adapter), step.merge)
    result = set_peft_model_state_dict(lora_model, start)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ValueError(f"the previous run's adapter has layers this run does not adapt: {unexpected[:3]}")


def save_merged(step: CampaignStep, adapter: Path, target: Path) -> tuple[Path, float | None]:
    """Write the campaign's merged adapter after this run beside its own; returns it and lambda(i)."""
    from safetensors.torch import save_file

    previous = read_adapter(step.parent_merged) if step.index > 1 else None
    merged = slao.merged_state(previous, read_adapter(adapter), step.index, step.merge)
    partial = layout.partial(target)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    shutil.copy2(adapter / "adapter_config.json", partial / "adapter_config.json")
    save_file(merged, str(partial / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    publish_folder(partial, target)
    return target, MERGES[step.merge].weight(step.index)
