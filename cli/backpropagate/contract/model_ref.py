"""Model references: a local folder made with save_pretrained, or a hub id."""

from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.model_folder import check_model_folder


def check_model_ref(name: str) -> None:
    """A name that looks like a path must exist; anything else is left for the hub to resolve."""
    if not name:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--model", value=name, reason="no model given",
                            allowed="a hub id or a local folder (or set BACKPROPAGATE_MODEL__NAME)")
    try:
        path = Path(name).expanduser()
        if path.is_file():
            raise BackpropError("INPUT_MODEL_NOT_A_FOLDER", model=name, reason="it is a file",
                                remedy="pass the folder that holds it (the one save_pretrained wrote)")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BackpropError("INPUT_MODEL_NOT_A_FOLDER", model=name, reason="it has no config.json",
                                    remedy="pass the folder save_pretrained wrote (it holds config.json and the "
                                           "weights), or a hub id")
            check_model_folder(path, name)
            return
    except PermissionError:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--model", value=name,
                            reason="this user may not read that path", allowed="a folder you can read") from None
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise BackpropError("INPUT_MODEL_NOT_FOUND", model=name)
