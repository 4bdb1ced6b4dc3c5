"""Model references: a local folder made with save_pretrained, or a hub id."""

from pathlib import Path

from backpropagate.contract.errors import BackpropError


def check_model_ref(name: str) -> None:
    """A name that looks like a path must exist; anything else is left for the hub to resolve."""
    if not name:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--model", value=name, reason="no model given",
                            allowed="a hub id or a local folder (or set BACKPROPAGATE_MODEL__NAME)")
    try:
        if Path(name).expanduser().exists():
            return
    except PermissionError:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--model", value=name,
                            reason="this user may not read that path", allowed="a folder you can read") from None
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise BackpropError("INPUT_MODEL_NOT_FOUND", model=name)
