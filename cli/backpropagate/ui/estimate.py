"""The picked model's plan before a run starts: `backprop plan` with the form's memory settings, in a child
process (the same estimate `train` prints and refuses on), read from the model's config alone."""

from backpropagate.commands.plan import MEMORY_OPTIONS
from backpropagate.config import Settings
from backpropagate.ui.child import cli_result
from backpropagate.ui.form import train_flags

TIMEOUT_S = 120  # a hub model's config may have to be fetched first


def plan_estimate(model: str, values: dict[str, str], settings: Settings) -> dict:
    """plan's --json result (peak memory, whether it fits, the change that would, the pace), or ``{"error": ...}``."""
    flags = train_flags({name: value for name, value in values.items() if name in MEMORY_OPTIONS}, settings)
    return cli_result(["plan", f"--model={model}", *flags], TIMEOUT_S, f"reading the config of {model}")
