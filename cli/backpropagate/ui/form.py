"""The new-run form, drawn from the run options of the settings declaration.

Each run option is a field, under its group, with the declaration's limits as the input's
``min``/``max`` and the setting in effect (default, else environment) as its value. Only
fields changed from that value become flags of the `backprop train` the form starts, so a
LoRA preset still sets what the user left alone.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backpropagate.config import Settings, setting_value
from backpropagate.contract.settings import GROUPS
from backpropagate.options import RunOption, run_options

MODELS = "models"  # the folder under the UI's own whose model folders the picker offers

# The UI sets these itself: the model (checked against its folder) and the workspace (its own).
SET_BY_THE_UI = ("model", "output")


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    group: str
    widget: str  # number, text or select
    choices: tuple[str, ...]  # a select's options; "" stands for none
    min: Any  # None when the declaration sets no bound
    max: Any
    step: str  # "1" for integers, "any" for numbers
    value: str  # what the field shows before the user changes it


def form_fields(settings: Settings, shown: dict[str, str] | None = None,
                options: dict[str, RunOption] | None = None) -> list[FormField]:
    """Every run option the form offers (or each of ``options``: the campaign's), in group order; ``shown``
    replaces what a field starts with."""
    fields = []
    for name, option in (run_options() if options is None else options).items():
        if name in SET_BY_THE_UI:
            continue
        value = (shown or {}).get(name, as_text(option, setting_value(settings, option.key)))
        limit = option.limit
        if option.kind is bool:
            widget, choices = "select", ("on", "off")
        elif option.choices:
            widget, choices = "select", (("",) if option.optional else ()) + tuple(map(str, option.choices))
        else:
            widget, choices = ("number" if option.kind in (int, float) else "text"), ()
        fields.append(FormField(name, option.help, option.group, widget, choices,
                                limit.low if limit else None, limit.high if limit else None,
                                "1" if option.kind is int else "any", value))
    return fields


def grouped(fields: list[FormField]) -> list[tuple[str, list[FormField]]]:
    found = [(group, [f for f in fields if f.group == group]) for group in GROUPS]
    return [(group, members) for group, members in found if members]


def train_flags(values: dict[str, str], settings: Settings, options: dict[str, RunOption] | None = None) -> list[str]:
    """The flags for what the user changed (among the run options, or ``options``): a field left at the setting
    in effect is left to it."""
    flags = []
    for name, option in (run_options() if options is None else options).items():
        value = values.get(name, "").strip()
        if name in SET_BY_THE_UI or value in ("", as_text(option, setting_value(settings, option.key))):
            continue
        if option.kind is bool:
            flags.append(option.flag if value == "on" else option.off_flag)
        else:
            flags.append(f"{option.flag}={value}")
    return flags


def as_text(option: RunOption, value: Any) -> str:
    if option.kind is bool:
        return "on" if value else "off"
    if value is None:
        return ""
    return ",".join(value) if isinstance(value, tuple) else str(value)



def model_choices(root: Path) -> list[tuple[str, str]]:
    """The model picker's suggestions as (value, description): each preset `backprop presets` lists, then
    each model folder (one holding a config.json) under the UI folder's models/. Any hub id may be typed."""
    from backpropagate.planning.presets import presets

    found = [(p.name, f"preset: {p.hub_id}, {p.method}, {p.license}") for p in presets().values()]
    folder = root / MODELS
    if folder.is_dir():
        found += [(f"{MODELS}/{path.name}", "in this UI's folder") for path in sorted(folder.iterdir())
                  if (path / "config.json").is_file()]
    return found


def device_note() -> str:
    """What `auto` trains on here, as the form shows under the device field."""
    from backpropagate.planning.device import gpu_absent

    why = gpu_absent()
    if why:
        return f"auto trains on the CPU here (no GPU found: {why}): fine for a tiny model, slow for a real one"
    return "auto trains on the GPU when the run finds one, else on the CPU with a warning"
