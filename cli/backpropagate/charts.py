"""Loss curves: drawn in the terminal with text, or written as a PNG (matplotlib, imported on use)."""

from collections.abc import Callable
from pathlib import Path

from backpropagate.contract.errors import BackpropError

_LEVELS = " ▁▂▃▄▅▆▇█"


def text_curve(values: list[float], width: int = 60, height: int = 8) -> str:
    """A block-character chart of ``values``, resampled to ``width`` columns, with its range."""
    if not values:
        return "(no steps recorded)"
    columns = values if len(values) <= width else [values[int(i * len(values) / width)] for i in range(width)]
    low, high = min(columns), max(columns)
    span = (high - low) or 1.0
    levels = [(v - low) / span * height for v in columns]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = [_LEVELS[max(0, min(8, round((level - row) * 8)))] for level in levels]
        rows.append("".join(cells))
    return "\n".join([f"{high:.4f} ┐", *rows, f"{low:.4f} ┘ steps 1-{len(values)}"])


def png_writer(steps: list[int], losses: list[float], learning_rates: list[float], title: str,
               eval_losses: list | None = None) -> Callable[[Path], None]:
    """Training loss and learning rate by step; held-out loss (``[step, loss]`` pairs) as points on the loss axis.

    Returns what writes the PNG to a path, for the caller to hand to where its file may go
    (``contract/outputs.py``); matplotlib is imported here, so a missing one is refused before anything is written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BackpropError("DEP_PLOT_UNAVAILABLE", reason=str(exc)) from None

    def write(path: Path) -> None:
        figure, loss_axis = plt.subplots(figsize=(8, 4.5), dpi=100)
        try:
            loss_axis.plot(steps, losses, color="tab:blue", label="loss")
            if eval_losses:
                loss_axis.plot([s for s, _ in eval_losses], [v for _, v in eval_losses], color="tab:green",
                               marker="o", label="held-out loss")
                loss_axis.legend(loc="upper right")
            loss_axis.set_xlabel("step")
            loss_axis.set_ylabel("loss", color="tab:blue")
            lr_axis = loss_axis.twinx()
            lr_axis.plot(steps, learning_rates, color="tab:orange", linestyle="--", label="learning rate")
            lr_axis.set_ylabel("learning rate", color="tab:orange")
            loss_axis.set_title(title)
            figure.tight_layout()
            figure.savefig(path, format="png")
        finally:
            plt.close(figure)

    return write
