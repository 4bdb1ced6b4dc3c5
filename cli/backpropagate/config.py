"""Settings: defaults, then ``BACKPROPAGATE_*`` environment variables, then flags or API arguments.

Environment variables use ``__`` for nesting: ``BACKPROPAGATE_LORA__R=32`` sets
``lora.r``; top-level settings have no section (``BACKPROPAGATE_LOG_LEVEL``).
A LoRA preset is a bundle of values. It is applied at the layer it comes from,
before that layer's explicit values: ``--lora-preset fast --lora-r 8`` gives rank 8.

This module is imported by the CLI and by every stage (the train spec embeds
``TrainingSettings`` and ``LoraSettings``), so it is defined once here.
"""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.schema import allowed_text, at_least, check_all, field, parse_text, positive
from backpropagate.contract.settings import (CampaignSettings, DockerSettings, LoraSettings, ModelSettings,
                                             TrainingSettings)
from backpropagate.runtimes.registry import RUNTIME_NAMES
from backpropagate.tracker_registry import TRACKER_NAMES  # the trackers `--report-to` may name
from backpropagate.runtimes.stopping import STOP_GRACE_S

ENV_PREFIX = "BACKPROPAGATE_"

# Presets: rank and targets, with alpha = rank (scale 1.0) so the update size does
# not change when the rank does. `quality` adapts every linear layer at rank 256;
# `fast` is the classic LoRA-paper setting, rank 16 on the query and value projections.
LORA_PRESETS: dict[str, dict[str, Any]] = {
    "quality": {"r": 256, "alpha": 256, "targets": ("all-linear",)},
    "fast": {"r": 16, "alpha": 16, "targets": ("q_proj", "v_proj")},
}

REPORT_TO_ALLOWED = "auto, none, or tracker names separated by commas: " + ", ".join(TRACKER_NAMES)


def requested_trackers(report_to: str) -> tuple[str, ...] | None:
    """The trackers `--report-to` names, in order; None for auto (each tracker installed and configured)."""
    words = [word.strip().lower() for word in report_to.split(",") if word.strip()]
    if words == ["auto"]:
        return None
    return () if words == ["none"] else tuple(dict.fromkeys(words))


def _report_to_problem(value: str) -> str | None:
    words = [word.strip().lower() for word in value.split(",") if word.strip()]
    if not words:
        return "names no tracker"
    if len(words) > 1 and {"auto", "none"} & set(words):
        return "auto and none stand alone"
    unknown = [word for word in words if word not in (*TRACKER_NAMES, "auto", "none")]
    return f"unknown tracker {unknown[0]!r}" if unknown else None


@dataclass(frozen=True)
class UiSettings:
    output_dir: str = field("~/.backpropagate/ui-outputs", help="The one folder `backprop ui` reads and writes: "
                            "uploaded datasets and its runs.", flag="--output", short="-o")
    published_on_loopback: bool = field(False, help="the operator's word that `--host 0.0.0.0` is reachable only "
                                        "through a port published on 127.0.0.1 (a container's); lets it start "
                                        "without --auth")
    trusted_proxies: str = field("", help="comma-separated addresses of the reverse proxies in front of the UI, "
                                 "whose X-Forwarded-For then names the client (for the failed-login limit); "
                                 "empty: the connecting address is the client, whatever headers say")


@dataclass(frozen=True)
class Settings:
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO", help="how much stages write to log.txt")
    # A flag with no group is every command's option, not a setting of a run.
    log_json: bool = field(False, help="Machine-readable output: events and results as JSON lines on stdout.",
                           flag="--json/--no-json")
    output: str = field("./output", help="Workspace folder holding run folders and run_history.json.",
                        flag="--output", short="-o", group="Basics")
    runtime: Literal[("auto", *RUNTIME_NAMES)] = field(
        "auto", help="Where stages run: docker (the pinned stage images), local (this Python's ML stack), ray (the "
        "workers of a Ray cluster, pip install 'backpropagate[ray]'), or auto: the first of docker and local that "
        "can run here.", flag="--runtime", group="Runtime")
    report_to: str = field("auto", check=_report_to_problem, allowed=REPORT_TO_ALLOWED,
                           help="Experiment trackers that receive the run: auto (each one installed and configured), "
                           "none, or names such as " + ",".join(TRACKER_NAMES) + ".", flag="--report-to",
                           group="Tracking")
    workers: int = field(1, check=at_least(1), allowed="an integer of at least 1",
                         help="Data-parallel training processes (torchrun); --batch-size x --gradient-accumulation "
                              "stays the global batch of a step.", flag="--workers", group="Runtime")
    ray_address: str = field("", help="The Ray cluster --runtime ray runs on: its head's HOST:6379, as `ray status` "
                             "shows it; none: RAY_ADDRESS, else a Ray cluster started here for the run.",
                             flag="--ray-address", group="Runtime")
    ray_max_failures: int = field(1, check=at_least(0), allowed="an integer of at least 0",
                                  help="Under --runtime ray, how many times Ray restarts the workers after one is "
                                  "lost; each restart resumes from the newest checkpoint.", flag="--ray-max-failures",
                                  group="Runtime")
    stop_grace_s: float = field(STOP_GRACE_S, check=positive, allowed="seconds greater than 0",
                                help="After Ctrl-C, SIGTERM or SIGHUP, how long a stage may take to stop before it is "
                                "killed (a run resumes from its last checkpoint).")
    model: ModelSettings = field(ModelSettings())
    training: TrainingSettings = field(TrainingSettings())
    lora: LoraSettings = field(LoraSettings())
    campaign: CampaignSettings = field(CampaignSettings())
    docker: DockerSettings = field(DockerSettings())
    ui: UiSettings = field(UiSettings())


_SECTIONS = ("model", "training", "lora", "campaign", "docker", "ui")


def env_variables() -> dict[str, tuple[str, str | None]]:
    """Every accepted variable name -> (section or "", field name)."""
    names: dict[str, tuple[str, str | None]] = {}
    for f in dataclasses.fields(Settings):
        if f.name in _SECTIONS:
            for sub in dataclasses.fields(f.type):
                names[env_name(f"{f.name}.{sub.name}")] = (f.name, sub.name)
        else:
            names[env_name(f.name)] = ("", f.name)
    return names


def env_name(key: str) -> str:
    """The variable that sets a setting: ``lora.r`` -> BACKPROPAGATE_LORA__R, ``output`` -> BACKPROPAGATE_OUTPUT."""
    section, _, name = key.rpartition(".")
    return f"{ENV_PREFIX}{section.upper()}__{name.upper()}" if section else f"{ENV_PREFIX}{name.upper()}"


def load_settings(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
                  names: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings: defaults < environment < overrides ({"lora.r": 8, "log_json": True}; None = unset).

    ``names`` maps a setting key to what the user typed (``--lora-r``), so errors name it.
    """
    environ = os.environ if environ is None else environ
    settings = Settings()
    settings = _apply_layer(settings, _env_layer(environ), source="env")
    settings = _apply_layer(settings, {k: v for k, v in (overrides or {}).items() if v is not None}, source="flag")
    problems = check_all(settings)
    if problems:
        # Environment values were checked on read, so a problem here comes from an override.
        key, reason = problems[0].split(": ", 1)
        raise BackpropError("CONFIG_VALUE_INVALID", name=(names or {}).get(key, key),
                            value=setting_value(settings, key), reason=reason, allowed=allowed_text(field_for(key)))
    return settings


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    known = env_variables()
    layer: dict[str, Any] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        text = environ[variable]
        if variable not in known:
            raise BackpropError("CONFIG_ENV_UNKNOWN", variable=variable, known=", ".join(sorted(known)))
        section, name = known[variable]
        key = f"{section}.{name}" if section else name
        f = field_for(key)
        try:
            value = parse_text(f.type, text)
        except ValueError as exc:
            raise BackpropError("CONFIG_ENV_INVALID", variable=variable, value=text, reason=str(exc),
                                allowed=allowed_text(f)) from None
        reason = f.metadata.get("check") and value is not None and f.metadata["check"](value)
        if reason:
            raise BackpropError("CONFIG_ENV_INVALID", variable=variable, value=text, reason=reason,
                                allowed=allowed_text(f))
        layer[key] = value
    return layer


def _apply_layer(settings: Settings, layer: dict[str, Any], source: str) -> Settings:
    preset = layer.get("lora.preset")
    if preset is not None:
        settings = _replace(settings, {f"lora.{k}": v for k, v in LORA_PRESETS[preset].items()})
    return _replace(settings, layer)


def _replace(settings: Settings, values: dict[str, Any]) -> Settings:
    top = {k: v for k, v in values.items() if "." not in k}
    sections = {}
    for section in _SECTIONS:
        sub = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(section + ".")}
        if sub:
            sections[section] = dataclasses.replace(getattr(settings, section), **sub)
    return dataclasses.replace(settings, **top, **sections)


def field_for(key: str) -> dataclasses.Field:
    """The declared field of a setting key: ``lora.r``."""
    owner: type = Settings
    *path, name = key.split(".")
    for part in path:
        owner = {f.name: f.type for f in dataclasses.fields(owner)}[part]
    return {f.name: f for f in dataclasses.fields(owner)}[name]


def setting_value(settings: Settings, key: str) -> Any:
    """The value of a setting by its key: ``lora.r``."""
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def output_dir(settings: Settings) -> Path:
    return Path(settings.output).expanduser()


def output_flag(settings: Settings) -> str:
    """`` --output DIR`` for a next command to print when the workspace is not the default one, else ""."""
    return "" if settings.output == Settings().output else f" --output {settings.output}"


def command_settings(output: Path | str | None = None, json_output: bool | None = None, runtime: str | None = None,
                     gpus: str | None = None, report_to: str | None = None, workers: int | None = None,
                     ray_address: str | None = None, ray_max_failures: int | None = None) -> Settings:
    """The settings of a command that takes the shared --output, --json, --runtime and --gpus options."""
    return load_settings(overrides={"output": str(output) if output else None, "log_json": json_output,
                                    "runtime": runtime, "docker.gpus": gpus, "report_to": report_to,
                                    "workers": workers, "ray_address": ray_address,
                                    "ray_max_failures": ray_max_failures},
                         names={"report_to": "--report-to", "workers": "--workers",
                                "ray_max_failures": "--ray-max-failures"})
