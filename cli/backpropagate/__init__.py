"""backpropagate: train a LoRA adapter from a JSONL file and ship it to Ollama.

``from backpropagate import Trainer`` is the Python API (see api.py). Names are
loaded on first use so that importing the package, and so ``backprop --help``,
stays instant.
"""

__version__ = "0.1.0"
__all__ = ["BackpropError", "TrainResult", "Trainer", "__version__"]


def __getattr__(name: str):
    if name in ("Trainer", "TrainResult"):
        from backpropagate import api

        return getattr(api, name)
    if name == "BackpropError":
        from backpropagate.contract.errors import BackpropError

        return BackpropError
    raise AttributeError(f"module 'backpropagate' has no attribute {name!r}")
