"""How `show-run` shows a campaign: its runs in order with their losses and lambda, and what each
merged adapter kept of every earlier run's held-out data: the accuracy matrix and the held-out losses."""

from pathlib import Path

from backpropagate.charts import matrix_png_writer, png_writer, text_curve
from backpropagate.contract.campaign import campaign_matrix
from backpropagate.contract.outputs import write_named_output
from backpropagate.contract.records import RunRecord, load_record


def campaign_view(output: Path, record: RunRecord, plot: Path | None) -> tuple[str, dict]:
    row = record.row
    runs = [load_record(output, run_id) for run_id in row.campaign_runs]
    losses, learning_rates = [], []
    for run in runs:  # one run after another, on one step axis
        losses += [run.losses[s] for s in sorted(run.losses)]
        learning_rates += [run.learning_rates[s] for s in sorted(run.learning_rates)]
    matrix = campaign_matrix(row.campaign_evals, len(row.campaign_runs))
    data = {"row": row.to_dict(), "runs": [run.to_dict() for run in runs], "evals": row.campaign_evals,
            "matrix": matrix}
    lines = [f"campaign {row.run_id}  {row.status}" + (f"  {row.error_code}" if row.error_code else ""),
             f"  {'model':<16}{row.model}", f"  {'dataset':<16}{row.dataset}", f"  {'merge':<16}{row.merge}"]
    if row.adapter:
        lines.append(f"  {'adapter':<16}{row.adapter}")
    lines.append("runs:")
    for run in runs:
        curve = [run.losses[s] for s in sorted(run.losses)]
        weight = f"  lambda {run.row.merge_lambda:.4f}" if run.row.merge_lambda is not None else ""
        span = f"loss {curve[0]:.4f} -> {curve[-1]:.4f}" if curve else "no steps yet"
        replayed = run.row.replayed
        also = f"  replayed {replayed['rows']} rows of earlier runs" if replayed else ""
        lines.append(f"  {run.row.campaign_index}  {run.row.run_id}  {run.row.status}  {span}{weight}{also}")
    for figures in row.campaign_evals:
        shown = ", ".join(_figure(k, v) for k, v in figures.items() if k not in ("after_run", "on_run"))
        lines.append(f"after run {figures['after_run']}, on run {figures['on_run']}'s held-out data: {shown}")
    if any(value is not None for cells in matrix["accuracy"] for value in cells):
        lines += ["accuracy on run j's prompts (columns) after run i (rows):", *_grid_lines(matrix["hits"])]
        if matrix["acc"] is not None:
            lines.append(f"ACC {matrix['acc']:.4f}" + (f"  BWT {matrix['bwt']:+.4f}" if matrix["bwt"] is not None
                                                       else ""))
    lines += ["loss (the runs one after another):", text_curve(losses)]
    if plot is not None:
        title = f"campaign {row.run_id[:8]} ({len(runs)} runs)"
        measured = any(value is not None for grid in (matrix["accuracy"], matrix["eval_loss"])
                       for cells in grid for value in cells)
        draw = (matrix_png_writer(matrix, title) if measured  # evaluated per run: what it kept of each run
                else png_writer(list(range(1, len(losses) + 1)), losses, learning_rates, title))
        data["plot"] = str(write_named_output(plot, "--plot", draw))
        lines.append(f"plot: {data['plot']}")
    return "\n".join(lines), data


def _figure(name: str, value) -> str:
    """A held-out figure as text; hits as right/asked of the merged adapter, then of the base and any other."""
    if name == "hits" and isinstance(value, dict) and {"expected", "fine_tune"} <= value.keys():
        asked = value["expected"]
        others = ", ".join(f"{model} {right}/{asked}" for model, right in value.items()
                           if model not in ("expected", "fine_tune"))
        return f"right {value['fine_tune']}/{asked}" + (f" ({others})" if others else "")
    return f"{name} {value}"


def _grid_lines(cells: list[list]) -> list[str]:
    width = max([len(str(cell)) for row in cells for cell in row if cell is not None] + [4])
    header = " " * len("  after 1") + "".join(f"{'on ' + str(j):>{width + 2}}" for j in range(1, len(cells) + 1))
    return [header] + [f"  after {i}" + "".join(f"{'' if cell is None else cell:>{width + 2}}" for cell in row)
                       for i, row in enumerate(cells, start=1)]
