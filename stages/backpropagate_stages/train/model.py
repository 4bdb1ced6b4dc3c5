"""Loading the base model and tokenizer, and wrapping the model with a LoRA adapter.

Three ways in, chosen by ``choose_backend``: plain PEFT (any device), PEFT on a
4-bit bitsandbytes base (QLoRA, CUDA only), and Unsloth's fused kernels, used only
when Unsloth is installed, a GPU is present and the model family is one it supports.
"""

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import LoraSettings, TrainingSettings

UNSLOTH_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3"}


@dataclass(frozen=True)
class Backend:
    name: str  # "peft" | "unsloth"
    reason: str


def resolve_device(requested: str, lora: LoraSettings, warn=None):
    """The torch device to train on. ``auto`` without a usable GPU trains on the CPU and says so through
    ``warn`` (a message); ``cuda`` asked for explicitly never falls back."""
    import torch

    if lora.qlora and requested == "cpu":
        raise BackpropError("CONFIG_QLORA_NEEDS_CUDA")
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        reason = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no CUDA device"
        if lora.qlora:
            raise BackpropError("CONFIG_QLORA_NEEDS_CUDA")
        if requested == "cuda":
            raise BackpropError("DEP_GPU_NOT_AVAILABLE", reason=reason)
        if warn is not None:
            warn(f"no CUDA GPU here ({reason}): --device auto trains on the CPU, tens of times slower than on a "
                 "GPU: fine for a small model or a short test run (--device cpu chooses the CPU without this warning)")
        return torch.device("cpu")
    return torch.device("cuda")


def choose_backend(requested: str, device_type: str, model_type: str, unsloth_installed: bool,
                   dora: bool = False) -> Backend:
    """Unsloth when asked or possible; PEFT otherwise. ``--unsloth on`` never falls back silently."""
    if requested == "off":
        return Backend("peft", "--unsloth off")
    missing = (
        "Unsloth is not installed" if not unsloth_installed
        else "this project trains DoRA through PEFT only" if dora
        else "Unsloth needs a CUDA GPU" if device_type != "cuda"
        else f"Unsloth does not support the {model_type} family" if model_type not in UNSLOTH_FAMILIES
        else None
    )
    if missing is None:
        return Backend("unsloth", f"Unsloth supports {model_type} on this GPU")
    if requested == "on":
        raise BackpropError("DEP_UNSLOTH_UNAVAILABLE", reason=missing)
    return Backend("peft", missing)


def load_tokenizer(name: str):
    from backpropagate_stages import model_tokenizer

    try:
        tokenizer = model_tokenizer.load(name)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors... all mean "cannot load"
        if Path(name).is_dir():  # the folder is there: it is its tokenizer that is broken
            raise BackpropError("INPUT_MODEL_TOKENIZER_INVALID", model=name, reason=_first_line(exc)) from None
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=name, reason=_first_line(exc)) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_type_of(name: str) -> str:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name).model_type
    except Exception as exc:
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=name, reason=_first_line(exc)) from None


def check_architecture(name: str) -> None:
    """A local folder's model_type must be one transformers builds; its config.json was checked readable
    (check_model_ref). Before the tokenizer, whose loading would fail on it with another story."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config = Path(name) / "config.json"
    if not config.is_file():
        return
    declared = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if declared not in CONFIG_MAPPING:
        raise BackpropError("INPUT_MODEL_ARCHITECTURE_UNKNOWN", model=name, model_type=declared,
                            version=transformers.__version__)


def load_lora_model(name: str, lora: LoraSettings, training: TrainingSettings, device, backend: Backend):
    """The base model with a trainable LoRA adapter attached, on ``device``."""
    if backend.name == "unsloth":
        return _load_unsloth(name, lora, training)
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": torch.float32}
    if device.type == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        from backpropagate_stages.train import packed_attention

        kwargs["attn_implementation"] = packed_attention.register()
    if lora.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
        # Each rank's 4-bit base on its own GPU (torchrun's LOCAL_RANK, made current by distributed.join).
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except Exception as exc:
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=name, reason=_first_line(exc)) from None
    if lora.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    else:
        model.to(device)
    targets = "all-linear" if lora.targets == ("all-linear",) else list(lora.targets)
    # PEFT matches any one of the names and ignores the others, which would land unused in adapter_config.json.
    unknown = [] if targets == "all-linear" else sorted(set(targets) - set(linear_names(model)))
    if unknown:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--lora-targets", value=",".join(lora.targets),
                            reason=f"{name} has no linear layer named {', '.join(unknown)}",
                            allowed="all-linear or some of " + ", ".join(linear_names(model)))
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        use_dora=lora.dora, bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise BackpropError("CONFIG_VALUE_INVALID", name="lora.targets", value=",".join(lora.targets),
                            reason=_first_line(exc), allowed="all-linear or some of " + ", ".join(linear_names(model))
                            ) from None


def redact_base_name(lora_model) -> None:
    """adapter_config.json and the adapter's model card name the base as spec.json does: a token inside
    the model id is not written (the model is loaded by then)."""
    from backpropagate.contract.redact import redact

    for config in getattr(lora_model, "peft_config", {}).values():
        config.base_model_name_or_path = redact(config.base_model_name_or_path or "")
    base = lora_model.get_base_model()
    if isinstance(getattr(base, "name_or_path", None), str):
        base.name_or_path = redact(base.name_or_path)  # the card's base_model:adapter: tag
    if getattr(base, "config", None) is not None:
        base.config._name_or_path = redact(base.config._name_or_path or "")  # the card's base_model


def linear_names(model) -> list[str]:
    """Names of the linear layers LoRA can target (last path component, deduplicated)."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    return sorted(names - {"lm_head"})


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def _load_unsloth(name: str, lora: LoraSettings, training: TrainingSettings):
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(model_name=name, max_seq_length=training.max_seq_length,
                                                 dtype=None, load_in_4bit=lora.qlora)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] \
        if lora.targets == ("all-linear",) else list(lora.targets)
    return FastLanguageModel.get_peft_model(model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=targets, bias="none", random_state=training.seed)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
