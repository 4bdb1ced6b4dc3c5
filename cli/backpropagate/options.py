"""A run's options, read off the settings declaration: what `train`, `multi-run`, the API and the UI accept.

A field of ``Settings`` (or of one of its sections) that names a ``flag`` and a ``group`` is a run
option: ``lora.r`` is ``--lora-r`` on the command line, ``lora_r=`` in the API, the ``lora_r`` field
of the web UI's form and ``BACKPROPAGATE_LORA__R`` in the environment. Nothing here lists them
again: adding a field to the declaration adds it everywhere.
"""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from backpropagate.config import ENV_PREFIX, Settings, env_name, load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.schema import Limit, allowed_text, default_of, limit_of, literal_choices, value_kind
from backpropagate.contract.settings import CAMPAIGN_GROUP, GROUPS


@dataclass(frozen=True)
class RunOption:
    key: str  # the setting it sets: "lora.r", or "output" for a top-level one
    flag: str  # "--lora-r"
    off_flag: str  # a switch's other spelling ("--no-dora"), else ""
    short: str  # "-m", else ""
    help: str
    group: str
    default: Any
    kind: type  # int, float, bool, str or tuple (comma-separated names)
    choices: tuple  # for a closed set of values, else ()
    optional: bool  # None is a value (no preset)
    limit: Limit | None
    allowed: str  # what it accepts, in words
    env: str  # its environment variable
    keyword: str = ""  # the API keyword, where it is not the flag's name

    @property
    def name(self) -> str:
        """The API keyword and the form field: the flag with underscores, unless the declaration names one."""
        return self.keyword or self.flag[2:].replace("-", "_")

    def shown_default(self) -> str:
        return shown_value(self.default)


def shown_value(value: Any) -> str:
    """A setting's value as a person reads it on the command line: on/off, none, comma-separated names."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == "":
        return "none"
    return ",".join(value) if isinstance(value, tuple) else str(value)


def declared_option(f: dataclasses.Field, key: str) -> RunOption:
    """The option a field declares (it has a ``flag``)."""
    flag, _, off_flag = f.metadata["flag"].partition("/")
    kind, optional = value_kind(f)
    return RunOption(key=key, flag=flag, off_flag=off_flag, short=f.metadata.get("short", ""),
                     help=f.metadata.get("help", ""), group=f.metadata.get("group", ""), default=default_of(f),
                     kind=kind, choices=literal_choices(f.type), optional=optional, limit=limit_of(f),
                     allowed=allowed_text(f), env=env_name(key), keyword=f.metadata.get("keyword", ""))


@cache
def flagged_options() -> dict[str, RunOption]:
    """Every field with a flag, by key, in the order of the declaration."""
    found = {}
    for f in dataclasses.fields(Settings):
        if dataclasses.is_dataclass(f.type):
            for sub in dataclasses.fields(f.type):
                if sub.metadata.get("flag"):
                    found[f"{f.name}.{sub.name}"] = declared_option(sub, f"{f.name}.{sub.name}")
        elif f.metadata.get("flag"):
            found[f.name] = declared_option(f, f.name)
    return found


@cache
def grouped_options() -> dict[str, RunOption]:
    """Every option with a group, by API name, grouped as GROUPS orders them (the order --help lists them in)."""
    grouped = [option for option in flagged_options().values() if option.group]
    unknown = [option.key for option in grouped if option.group not in GROUPS]
    if unknown:
        raise ValueError(f"{unknown[0]}: its group is not one of {', '.join(GROUPS)}")
    return {option.name: option for option in sorted(grouped, key=lambda option: GROUPS.index(option.group))}


@cache
def run_options() -> dict[str, RunOption]:
    """The options of one run: what `train` takes (and `multi-run`, for each of its runs)."""
    return {name: option for name, option in grouped_options().items() if option.group != CAMPAIGN_GROUP}


@cache
def campaign_options() -> dict[str, RunOption]:
    """The options of a campaign as a whole, which only `multi-run` takes (``--replay``)."""
    return {name: option for name, option in grouped_options().items() if option.group == CAMPAIGN_GROUP}


def option_for(key: str) -> RunOption:
    return flagged_options()[key]


def settings_from_arguments(arguments: Mapping[str, Any], call: str = "backprop train",
                            environ: Mapping[str, str] | None = None, campaign: bool = False, **top: Any) -> Settings:
    """Settings from `train`'s flags or `Trainer`'s keyword arguments: the one way both build a run's spec.

    ``arguments`` use the run options' names (None means not given), and the campaign options' where
    ``campaign`` (`multi-run`); ``top`` sets other top-level settings (``log_json``). ``lora_targets`` may
    be a comma-separated string or a sequence. Errors name a value as the caller typed it: ``--lora-r``
    for the CLI, ``lora_r`` for the API.
    """
    options = grouped_options() if campaign else run_options()
    unknown = sorted(set(arguments) - set(options))
    if unknown:
        raise BackpropError("CONFIG_ARGUMENT_UNKNOWN", call=call, names=", ".join(unknown),
                            accepted=", ".join(sorted(options)))
    values: dict[str, Any] = {**dict(top), **_preset_method(arguments, os.environ if environ is None else environ)}
    for name, value in arguments.items():
        if value is None:
            continue
        option = options[name]
        if option.kind is tuple:
            parts = value.split(",") if isinstance(value, str) else value
            value = tuple(str(part).strip() for part in parts if str(part).strip())
        elif option.kind is str and not isinstance(value, str) and name == "report_to":
            value = ",".join(str(part).strip() for part in value)  # the API's report_to=["wandb", "mlflow"]
        elif option.kind is str and not isinstance(value, str):
            value = str(value)  # output=Path(...)
        values[option.key] = value
    spelled = (lambda option: option.flag) if call.startswith("backprop") else (lambda option: option.name)
    return load_settings(environ, overrides=values, names={o.key: spelled(o) for o in options.values()})


def _preset_method(arguments: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A model preset's method (QLoRA or LoRA) where neither --qlora/--no-qlora nor its variable chose one.
    On the CPU (asked for, or `auto` on a machine with no GPU) a QLoRA preset trains with LoRA: 4-bit bases
    need CUDA."""
    from backpropagate.planning.device import training_device
    from backpropagate.planning.presets import find_preset

    model = arguments.get("model") or environ.get(f"{ENV_PREFIX}MODEL__NAME")
    preset = find_preset(str(model)) if model else None
    device = arguments.get("device") or environ.get(f"{ENV_PREFIX}TRAINING__DEVICE", "auto")
    if preset is None or arguments.get("qlora") is not None or f"{ENV_PREFIX}LORA__QLORA" in environ:
        return {}
    if training_device(device) == "cpu":
        return {}
    return {"lora.qlora": preset.method == "qlora"}
