"""Where a model's config.json comes from, without the network: a preset, a local folder, or the HF cache."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.model_ref import check_model_ref
from backpropagate.planning.presets import Preset, find_preset


@dataclass(frozen=True)
class ModelConfig:
    config: dict
    origin: str  # in words: "preset qwen2.5-7b", "models/tiny/config.json", "the Hugging Face cache"
    preset: Preset | None = None


def hub_cache() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it (HF_HUB_CACHE, then HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return home.expanduser() / "hub"


def cached_config(hub_id: str) -> Path | None:
    """config.json of ``hub_id`` in the hub cache: the snapshot refs/main names, else any snapshot."""
    repo = hub_cache() / ("models--" + hub_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file() and (repo / "snapshots" / ref.read_text().strip() / "config.json").is_file():
        return repo / "snapshots" / ref.read_text().strip() / "config.json"
    found = sorted((repo / "snapshots").glob("*/config.json"))
    return found[-1] if found else None


def model_config(model: str) -> ModelConfig:
    """The config of ``model``: a preset name, a local folder, or a hub id whose config.json is cached."""
    preset = find_preset(model)
    if preset is not None:
        return ModelConfig(preset.config, f"preset {preset.name} ({preset.hub_id})", preset)
    check_model_ref(model)
    folder = Path(model).expanduser()
    path = folder / "config.json" if folder.is_dir() else cached_config(model)
    if path is None:
        raise BackpropError("INPUT_MODEL_CONFIG_NOT_CACHED", model=model, cache=hub_cache())
    config = json.loads(path.read_text())
    if "hidden_size" not in config and isinstance(config.get("text_config"), dict):
        config = {**config["text_config"], "model_type": config["text_config"].get("model_type", "")}
    return ModelConfig(config, str(path) if folder.is_dir() else f"{model} in the Hugging Face cache")
