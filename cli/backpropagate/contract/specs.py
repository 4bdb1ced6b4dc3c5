"""Stage specs and results: what the host asks a stage to do, and what the stage reports back.

Each stage has one frozen spec type (written as a spec file in the run folder) and one
result type (the ``outputs`` of its ``finished`` event), defined here so the host and the
stage share one definition. Reading a spec is strict: every unknown key, missing key or
wrong type is reported at once with ``CONFIG_SPEC_INVALID``. Results are parsed as
strictly, once, where the host receives them.

A spec file is redacted as the console is: a value that holds a secret (a token in a flag's
value, in a model id or in a path) is written masked, and its real value goes to a file beside
it, ``.<spec>.secrets`` (mode 0600), which the stage reads and removes as it starts.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.merges import MERGE_NAMES
from backpropagate.contract.redact import MASK, redact_data
from backpropagate.contract.schema import field, from_dict, to_dict
from backpropagate.contract.settings import LoraSettings, TrainingSettings


@dataclass(frozen=True)
class DataSpec:
    path: str
    format: Literal["auto", "sharegpt", "openai", "alpaca", "text"] = field("auto")
    skip_invalid: bool = field(False)
    sha256: str = field("", help="of the file when the run was planned; the stage refuses a changed file")
    source: str = field("", help="where the user's file is, redacted; `path` may be a link to it")


@dataclass(frozen=True)
class PromptsSpec:
    path: str  # a link in the run folder to the user's file
    sha256: str = field("")
    source: str = field("", help="where the user's file is, redacted")


@dataclass(frozen=True)
class CampaignStep:
    """Where a run stands in a multi-run campaign, and what it starts from."""
    campaign_id: str
    index: int  # 1 for the campaign's first run
    merge: Literal[MERGE_NAMES] = field("slao")
    parent_run: str = field("", help="the previous run of the campaign; empty for the first")
    parent_adapter: str = field("", help="the previous run's fine-tuned adapter folder, which this run starts from")
    parent_merged: str = field("", help="the campaign's merged adapter after the previous run")


@dataclass(frozen=True)
class TrainSpec:
    run_id: str
    run_dir: str
    model: str
    data: DataSpec
    training: TrainingSettings
    lora: LoraSettings
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO")
    versions: dict = field({}, help="of the host that planned the run")
    resume: bool = field(False, help="continue from the newest valid checkpoint in run_dir")
    eval_data: DataSpec | None = field(None, help="held-out rows; without it, training.eval_split of the data")
    eval_prompts: PromptsSpec | None = field(None, help="prompts answered by the base and the fine-tune")
    campaign: CampaignStep | None = field(None, help="a run of a multi-run campaign: its start and its merge")
    stage: Literal["train"] = field("train")


@dataclass(frozen=True)
class EvalSpec:
    """`backprop eval`: the quality report of a trained run, measured after the fact."""
    run_id: str
    run_dir: str
    model: str  # the base
    adapter: str
    training: TrainingSettings  # the run's: sequence length, loss masking, device, answer length
    data: DataSpec | None = field(None, help="the run's training data, whose held-out split is used by default")
    eval_data: DataSpec | None = field(None)
    eval_prompts: PromptsSpec | None = field(None)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO")
    stage: Literal["eval"] = field("eval")


@dataclass(frozen=True)
class MergeSpec:
    run_id: str
    run_dir: str
    base_model: str  # hub id or local folder: the unquantized weights the adapter was trained on
    adapter: str  # folder with adapter_config.json and adapter_model.safetensors
    dtype: Literal["float16", "bfloat16", "float32"] = field("float16")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO")
    stage: Literal["merge"] = field("merge")


QUANTIZATIONS = ("f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0")


@dataclass(frozen=True)
class GgufSpec:
    run_id: str
    run_dir: str
    merged: str = field("", help="the merged model folder to convert (kind model)")
    kind: Literal["model", "lora"] = field("model", help="lora: the adapter alone, for a base the user has")
    adapter: str = field("", help="the adapter folder (kind lora)")
    base_model: str = field("", help="hub id or folder of the adapter's base (kind lora)")
    quantization: Literal[QUANTIZATIONS] = field("q4_k_m")
    verify: bool = field(True)
    data: str = field("", help="dataset whose rows give the verification sequences, or a campaign's data folder "
                                "(every run's); built-in text when empty")
    prompts: str = field("", help="eval prompts the exported GGUF answers too, into quality.json")
    max_new_tokens: int = field(48, help="answer length for those prompts")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field("INFO")
    stage: Literal["gguf"] = field("gguf")


@dataclass(frozen=True)
class TrainResult:
    adapter: str  # the adapter folder
    final_loss: float
    losses: list[float]  # one per optimizer step, from the run's first step
    learning_rates: list[float]
    steps: int
    resumed_from_step: int
    tokens: int
    train_seconds: float
    tokens_per_s: float
    oom_adjustments: list[dict]
    thermal_pauses: list[dict]
    device: str
    backend: str
    dataset_format: str
    examples: int
    dropped_rows: int
    versions: dict
    quality: dict = field({})  # the quality report's summary (QualityReport.summary), when there is one
    merged_adapter: str = field("", help="a campaign run: the campaign's merged adapter after this run")
    merge_lambda: float | None = field(None, help="a campaign run under slao: lambda(i), the weight of its B")


@dataclass(frozen=True)
class MergeResult:
    merged: str  # the merged model folder
    shards: int
    dtype: str
    bytes: int


@dataclass(frozen=True)
class GgufResult:
    gguf: str  # the published .gguf file
    kind: Literal["model", "lora"]
    quantization: str
    verify: dict  # what gguf/verify.json keeps for this file; {"verified": false} with --no-verify
    chat_template: bool
    quality: dict = field({})  # the quality report's summary, with this GGUF's answers counted


@dataclass(frozen=True)
class EvalResult:
    quality: dict  # the quality report's summary


def write_spec(spec, path: Path) -> None:
    write_spec_data(to_dict(spec), path)


def write_spec_data(data: dict, path: Path) -> None:
    """The spec redacted by the console's own redaction; what it hid, in the secrets file beside it."""
    shown = redact_data(data)
    hidden = _hidden(data, shown)
    secrets = secrets_file(path)
    if hidden:
        atomic_write_text(secrets, json.dumps(hidden))  # a temporary file's mode: 0600, its owner's only
    else:
        secrets.unlink(missing_ok=True)
    atomic_write_text(path, json.dumps(shown, indent=2) + "\n")


def secrets_file(spec_path: Path) -> Path:
    return Path(spec_path).with_name(f".{Path(spec_path).name}.secrets")


def spec_data(path: Path) -> dict:
    """A spec file as JSON, with the real values of what redaction hid while its secrets file exists."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        hidden = json.loads(secrets_file(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return data
    for keys, value in hidden:
        *parents, last = keys
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return data


def masked_fields(data, prefix: str = "") -> list[str]:
    """The fields of a spec read without its secrets file that still hold a masked value."""
    if isinstance(data, dict):
        return [name for key, item in data.items() for name in masked_fields(item, f"{prefix}{key}.")]
    if isinstance(data, list):
        return [name for i, item in enumerate(data) for name in masked_fields(item, f"{prefix}{i}.")]
    return [prefix.rstrip(".")] if isinstance(data, str) and MASK in data else []


def _hidden(real, shown, keys: tuple = ()) -> list:
    """[keys, real value] of every string the redaction changed."""
    if isinstance(real, dict):
        return [found for key in real for found in _hidden(real[key], shown[key], (*keys, key))]
    if isinstance(real, list):
        return [found for i, item in enumerate(real) for found in _hidden(item, shown[i], (*keys, i))]
    return [[list(keys), real]] if real != shown else []


def rebased(data, old: str, new: str):
    """``data`` with every string under the folder ``old`` moved under ``new`` (a masked run folder's
    paths, when the real folder is known again)."""
    if isinstance(data, dict):
        return {key: rebased(item, old, new) for key, item in data.items()}
    if isinstance(data, list):
        return [rebased(item, old, new) for item in data]
    if isinstance(data, str) and (data == old or data.startswith(old.rstrip("/") + "/")):
        return new + data[len(old.rstrip("/")):] if data != old else new
    return data


def read_spec(cls, path: Path, run_dir: Path | None = None):
    """Load and check a spec file; raises CONFIG_SPEC_INVALID listing every problem. With ``run_dir``,
    the paths under the run folder the spec names are read as under ``run_dir``."""
    try:
        data = spec_data(path)
        if run_dir is not None and isinstance(data, dict) and isinstance(data.get("run_dir"), str):
            data = rebased(data, data["run_dir"], str(run_dir))
    except FileNotFoundError:
        raise BackpropError("CONFIG_SPEC_INVALID", path=path, problems="the file does not exist") from None
    except json.JSONDecodeError as exc:
        raise BackpropError("CONFIG_SPEC_INVALID", path=path, problems=f"not JSON ({exc})") from None
    spec, problems = from_dict(cls, data)
    if problems:
        raise BackpropError("CONFIG_SPEC_INVALID", path=path, problems="; ".join(problems))
    return spec


def read_result(cls, stage: str, outputs: dict, log: Path):
    """A stage's ``finished`` outputs as its result type; a stage that reports something else has a bug."""
    result, problems = from_dict(cls, outputs, "outputs.")
    if problems:
        raise BackpropError("RUNTIME_STAGE_FAILED", stage=stage, log=log,
                            reason="its results do not match the contract: " + "; ".join(problems))
    return result


def read_run_spec(spec_path: Path, run_dir: Path, run_id: str) -> "TrainSpec":
    """A run's train spec for another go (resume, replay, export), its paths under the run folder found
    here. The secrets it was started with were never written: one outside that folder's own path cannot
    be had again."""
    spec = read_spec(TrainSpec, spec_path, run_dir=run_dir)
    # `source` fields are for people, redacted on purpose: the stage reads the path beside each.
    masked = [name for name in masked_fields(to_dict(spec)) if not name.endswith(".source")]
    if masked:
        raise BackpropError("STATE_SPEC_REDACTED", run_id=run_id, fields=", ".join(masked))
    return spec
