"""Finding a base model's files: a local folder as is, a hub id through the Hugging Face cache."""

from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.model_ref import check_model_ref


def base_folder(name: str) -> Path:
    """The folder holding the model's safetensors, config and tokenizer (downloaded once for a hub id)."""
    check_model_ref(name)
    path = Path(name).expanduser()
    if path.exists():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=["*.safetensors", "*.json", "*.model", "*.jinja",
                                                            "*.txt"]))
    except Exception as exc:  # offline, gated, missing: all mean the base cannot be read
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=name, reason=str(exc).splitlines()[0]) from None
