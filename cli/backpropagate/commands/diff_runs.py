"""`backprop diff-runs`: what differs between two runs, side by side."""

from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.records import flatten, load_record
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop diff-runs 3f2a 9c1e
"""

# Fields that differ between any two runs and say nothing about how they differ.
_ALWAYS_DIFFERENT = {"run_id", "run_dir", "started_at", "finished_at", "duration_s", "adapter", "resumed_at",
                     "data.path", "replay_of"}


def diff_runs(
    first: Annotated[str, typer.Argument(help="Run id or prefix.")],
    second: Annotated[str, typer.Argument(help="Run id or prefix.")],
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Show the settings and results that differ between two runs, and both final losses."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    a, b = (load_record(output_dir(settings), run) for run in (first, second))
    fields_a, fields_b = _fields(a), _fields(b)
    differences = {key: [fields_a.get(key), fields_b.get(key)]
                   for key in sorted(set(fields_a) | set(fields_b))
                   if key not in _ALWAYS_DIFFERENT and fields_a.get(key) != fields_b.get(key)}
    data = {"a": a.row["run_id"], "b": b.row["run_id"], "differences": differences,
            "final_loss": [a.row.get("final_loss"), b.row.get("final_loss")]}
    Output(json_mode=settings.log_json).result(_text(data), data)


def _fields(record) -> dict:
    spec = {key: value for key, value in record.spec.items() if key not in ("versions", "stage", "resume")}
    return {**flatten(spec), **{k: v for k, v in record.row.items() if not isinstance(v, (list, dict))},
            **{f"versions.{k}": v for k, v in record.manifest.get("versions", {}).items()}}


def _text(data: dict) -> str:
    rows = [("field", data["a"][:8], data["b"][:8])]
    rows += [(key, str(a), str(b)) for key, (a, b) in data["differences"].items()]
    rows.append(("final loss", *(f"{x:.4f}" if isinstance(x, float) else "-" for x in data["final_loss"])))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
