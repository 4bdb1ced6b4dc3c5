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
from backpropagate.contract.schema import allowed_text, check_all, field, parse_text, positive
from backpropagate.contract.settings import DockerSettings, LoraSettings, ModelSettings, TrainingSettings
from backpropagate.runtimes.stopping import STOP_GRACE_S

ENV_PREFIX = "BACKPROPAGATE_"

# Presets: rank and targets, with alpha = rank (scale 1.0) so the update size does
# not change when the rank does. `quality` adapts every linear layer at rank 256;
# `fast` is the classic LoRA-paper setting, rank 16 on the query and value projections.
LORA_PRESETS: dict[str, dict[str, Any]] = {
    "quality": {"r": 256, "alpha": 256, "targets": ("all-linear",)},
    "fast": {"r": 16, "alpha": 16, "targets": ("q_proj", "v_proj")},
}

# The experiment trackers `--report-to` may name; each is a sink (sinks/trackers.py).
TRACKER_NAMES = ("tensorboard", "mlflow", "wandb")
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
    output_dir: str = field("~/.backpropagate/ui-outputs", help="the one folder `backprop ui` reads and writes: "
                            "uploaded datasets and its runs")
    published_on_loopback: bool = field(False, help="the operator's word that `--host 0.0.0.0` is reachable only "
                                        "through a port published on 127.0.0.1 (a container's); lets it start "
                                        "without --auth")


@dataclass(frozen=True)
class Settings:
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO")
    log_json: bool = field(False, help="print events as JSON lines instead of progress bars")
    output: str = field("./output", help="workspace folder that holds run folders and run_history.json")
    runtime: Literal["auto", "docker", "local"] = field(
        "auto", help="where stages run: docker when an engine answers, else local when the ML stack imports")
    report_to: str = field("auto", check=_report_to_problem, allowed=REPORT_TO_ALLOWED,
                           help="experiment trackers that receive training runs")
    stop_grace_s: float = field(STOP_GRACE_S, check=positive, allowed="seconds greater than 0",
                                help="after Ctrl-C, SIGTERM or SIGHUP, how long a stage may take to stop before it "
                                "is killed (a run resumes from its last checkpoint)")
    model: ModelSettings = field(ModelSettings())
    training: TrainingSettings = field(TrainingSettings())
    lora: LoraSettings = field(LoraSettings())
    docker: DockerSettings = field(DockerSettings())
    ui: UiSettings = field(UiSettings())


_SECTIONS = ("model", "training", "lora", "docker", "ui")


def env_variables() -> dict[str, tuple[str, str | None]]:
    """Every accepted variable name -> (section or "", field name)."""
    names: dict[str, tuple[str, str | None]] = {}
    for f in dataclasses.fields(Settings):
        if f.name in _SECTIONS:
            for sub in dataclasses.fields(f.type):
                names[f"{ENV_PREFIX}{f.name.upper()}__{sub.name.upper()}"] = (f.name, sub.name)
        else:
            names[f"{ENV_PREFIX}{f.name.upper()}"] = ("", f.name)
    return names


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
        raise BackpropError("CONFIG_VALUE_INVALID", name=(names or {}).get(key, key), value=_get(settings, key),
                            reason=reason, allowed=allowed_text(_field_for(key)))
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
        f = _field_for(key)
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


def _field_for(key: str) -> dataclasses.Field:
    owner: type = Settings
    *path, name = key.split(".")
    for part in path:
        owner = {f.name: f.type for f in dataclasses.fields(owner)}[part]
    return {f.name: f for f in dataclasses.fields(owner)}[name]


def _get(settings: Settings, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def output_dir(settings: Settings) -> Path:
    return Path(settings.output).expanduser()


# The names of the settings a run can override, as API keyword arguments; the CLI
# flag is the same name with dashes (`lora_r` -> `--lora-r`).
OVERRIDES: dict[str, str] = {
    "model": "model.name",
    "output": "output",
    "steps": "training.steps",
    "batch_size": "training.batch_size",
    "gradient_accumulation": "training.gradient_accumulation",
    "learning_rate": "training.learning_rate",
    "lr_scheduler": "training.lr_scheduler",
    "warmup_steps": "training.warmup_steps",
    "weight_decay": "training.weight_decay",
    "max_grad_norm": "training.max_grad_norm",
    "max_seq_length": "training.max_seq_length",
    "packing": "training.packing",
    "train_on_inputs": "training.train_on_inputs",
    "seed": "training.seed",
    "device": "training.device",
    "checkpoint_every": "training.checkpoint_every",
    "keep_checkpoints": "training.keep_checkpoints",
    "unsloth": "training.unsloth",
    "oom_recovery": "training.oom_recovery",
    "checkpoint_on_interrupt": "training.checkpoint_on_interrupt",
    "eval_every": "training.eval_every",
    "eval_split": "training.eval_split",
    "eval_max_tokens": "training.eval_max_tokens",
    "thermal_pause_c": "training.thermal_pause_c",
    "thermal_resume_c": "training.thermal_resume_c",
    "thermal_timeout_s": "training.thermal_timeout_s",
    "thermal_poll_s": "training.thermal_poll_s",
    "lora_preset": "lora.preset",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_targets": "lora.targets",
    "dora": "lora.dora",
    "qlora": "lora.qlora",
    "runtime": "runtime",
    "gpus": "docker.gpus",
    "report_to": "report_to",
}


def flag_name(argument: str) -> str:
    return "--" + argument.replace("_", "-")


def settings_from_arguments(arguments: Mapping[str, Any], call: str = "backprop train",
                            environ: Mapping[str, str] | None = None, **top: Any) -> Settings:
    """Settings from `train`'s flags or `Trainer`'s keyword arguments: the one way both build a run's spec.

    ``arguments`` use the names of OVERRIDES (None means not given); ``top`` sets other top-level
    settings (``log_json``). ``lora_targets`` may be a comma-separated string or a sequence. Errors
    name a value as the caller typed it: ``--lora-r`` for the CLI, ``lora_r`` for the API.
    """
    spelled = flag_name if call.startswith("backprop") else (lambda name: name)
    unknown = sorted(set(arguments) - set(OVERRIDES))
    if unknown:
        raise BackpropError("CONFIG_ARGUMENT_UNKNOWN", call=call, names=", ".join(unknown),
                            accepted=", ".join(sorted(OVERRIDES)))
    values: dict[str, Any] = dict(top)
    for name, value in arguments.items():
        if value is None:
            continue
        if name == "lora_targets":
            parts = value.split(",") if isinstance(value, str) else value
            value = tuple(str(part).strip() for part in parts if str(part).strip())
        elif name == "report_to" and not isinstance(value, str):  # the API's report_to=["wandb", "mlflow"]
            value = ",".join(str(part).strip() for part in value)
        elif name == "output":
            value = str(value)
        values[OVERRIDES[name]] = value
    return load_settings(environ, overrides=values, names={key: spelled(name) for name, key in OVERRIDES.items()})


def command_settings(output: Path | str | None = None, json_output: bool | None = None, runtime: str | None = None,
                     gpus: str | None = None, report_to: str | None = None) -> Settings:
    """The settings of a command that takes the shared --output, --json, --runtime and --gpus options."""
    return load_settings(overrides={"output": str(output) if output else None, "log_json": json_output,
                                    "runtime": runtime, "docker.gpus": gpus, "report_to": report_to},
                         names={"report_to": "--report-to"})
