"""The new-run form, drawn from the run options of the settings declaration.

Each run option is a field, under its group, with the declaration's limits as the input's
``min``/``max`` and the setting in effect (default, else environment) as its value. Only
fields changed from that value become flags of the `backprop train` the form starts, so a
LoRA preset still sets what the user left alone.
"""

from dataclasses import dataclass
from typing import Any

from backpropagate.config import Settings, setting_value
from backpropagate.contract.settings import GROUPS
from backpropagate.options import RunOption, run_options

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


def form_fields(settings: Settings, shown: dict[str, str] | None = None) -> list[FormField]:
    """Every run option the form offers, in group order; ``shown`` replaces what a field starts with."""
    fields = []
    for name, option in run_options().items():
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


def train_flags(values: dict[str, str], settings: Settings) -> list[str]:
    """The flags for what the user changed: a field left at the setting in effect is left to it."""
    flags = []
    for name, option in run_options().items():
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

