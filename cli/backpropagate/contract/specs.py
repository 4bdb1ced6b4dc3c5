"""Stage specs and results: what the host asks a stage to do, and what the stage reports back.

Each stage has one frozen spec type (written as a spec file in the run folder) and one
result type (the ``outputs`` of its ``finished`` event), defined here so the host and the
stage share one definition. Reading a spec is strict: every unknown key, missing key or
wrong type is reported at once with ``CONFIG_SPEC_INVALID``. Results are parsed as
strictly, once, where the host receives them.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
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
    merge: Literal["slao", "none"] = field("slao")
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
    atomic_write_text(path, json.dumps(to_dict(spec), indent=2) + "\n")


def read_spec(cls, path: Path):
    """Load and check a spec file; raises CONFIG_SPEC_INVALID listing every problem."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
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
