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
    plt = _pyplot()

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


def matrix_png_writer(matrix: dict, title: str) -> Callable[[Path], None]:
    """A campaign's figures after each run (``contract.campaign.campaign_matrix``): the accuracy matrix as a
    heatmap (row: after run i, column: on run j's prompts) and the held-out loss on each run's data after each
    run, one line per run's data. A panel whose figures were not measured is left out."""
    plt = _pyplot()
    accuracy, eval_loss = matrix["accuracy"], matrix["eval_loss"]
    runs = len(accuracy)
    panels = [name for name, grid in (("accuracy", accuracy), ("eval_loss", eval_loss))
              if any(value is not None for row in grid for value in row)]

    def write(path: Path) -> None:
        figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4.5), dpi=100,
                                    squeeze=False)
        try:
            for axis, panel in zip(axes[0], panels):
                if panel == "accuracy":
                    _accuracy_heatmap(figure, axis, accuracy, matrix["hits"])
                else:
                    for on in range(runs):
                        points = [(after + 1, eval_loss[after][on]) for after in range(runs)
                                  if eval_loss[after][on] is not None]
                        if points:
                            axis.plot(*zip(*points), marker="o", label=f"run {on + 1}'s data")
                    axis.set_xticks(range(1, runs + 1))
                    axis.set_xlabel("after run")
                    axis.set_ylabel("held-out loss")
                    axis.set_title("held-out loss after each run")
                    axis.legend(loc="best", fontsize="small")
            if not panels:
                axes[0][0].text(0.5, 0.5, "nothing measured yet", ha="center", va="center")
                axes[0][0].set_axis_off()
            figure.suptitle(title + (f"  ACC {matrix['acc']:.3f}" if matrix.get("acc") is not None else "")
                            + (f"  BWT {matrix['bwt']:+.3f}" if matrix.get("bwt") is not None else ""))
            figure.tight_layout()
            figure.savefig(path, format="png")
        finally:
            plt.close(figure)

    return write


def _accuracy_heatmap(figure, axis, accuracy: list, hits: list) -> None:
    import numpy as np

    runs = len(accuracy)
    grid = np.array([[np.nan if value is None else value for value in row] for row in accuracy], dtype=float)
    image = axis.imshow(np.ma.masked_invalid(grid), vmin=0.0, vmax=1.0, cmap="viridis")
    for after in range(runs):
        for on in range(runs):
            if hits[after][on] is not None:
                axis.text(on, after, hits[after][on], ha="center", va="center",
                          color="white" if grid[after, on] < 0.6 else "black")
    labels = [str(n) for n in range(1, runs + 1)]
    axis.set_xticks(range(runs), labels)
    axis.set_yticks(range(runs), labels)
    axis.set_xlabel("on run j's prompts")
    axis.set_ylabel("after run i")
    axis.set_title("accuracy")
    figure.colorbar(image, ax=axis, fraction=0.046)


def _pyplot():
    """matplotlib's pyplot on the file-only backend; a missing matplotlib is refused before anything is written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BackpropError("DEP_PLOT_UNAVAILABLE", reason=str(exc)) from None
    return plt
