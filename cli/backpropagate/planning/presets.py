"""Model presets: short names `--model` accepts, each a data file in presets/ with its config's shape.

A preset names the hub id to train, the license, the default method (LoRA, or QLoRA where the
bf16 weights alone would not leave room on a 16 GB card), the chat template family, and the
config.json fields planning needs, so `backprop plan` and `backprop presets` work offline.
Each file says where its values were published.
"""

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from backpropagate.planning.shape import ModelShape

FOLDER = Path(__file__).with_name("presets")


@dataclass(frozen=True)
class Preset:
    name: str
    hub_id: str
    license: str
    method: str  # "lora" | "qlora"
    chat_family: str
    source: str
    config: dict

    @property
    def shape(self) -> ModelShape:
        return ModelShape.from_config(self.config, self.name)


@cache
def presets() -> dict[str, Preset]:
    """Every preset by name, in file-name order."""
    found = {}
    for path in sorted(FOLDER.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        found[data["name"]] = Preset(**data)
    return found


def find_preset(model: str) -> Preset | None:
    """The preset ``model`` names, or None. A folder of the same name is the user's model, not the preset."""
    preset = presets().get(model.lower())
    if preset is None or Path(model).expanduser().exists():
        return None
    return preset
