"""`backprop export-runs`: the run history as JSON lines or CSV, for spreadsheets and pipelines."""

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from backpropagate.commands._options import OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.history import RunHistory
from backpropagate.contract.outputs import named_output, write_named_output

EXAMPLES = """
Examples:

  backprop export-runs --format csv --out runs.csv

  backprop export-runs --format jsonl | jq .final_loss
"""


def export_runs(
    export_format: Annotated[Literal["jsonl", "csv"], typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Write here (atomically) instead of stdout.")] = None,
    output: OutputOpt = None,
) -> None:
    """Export every recorded run, oldest first."""
    settings = load_settings(overrides={"output": str(output) if output else None})
    if out is not None:
        named_output(out, "--out")  # refused before the history is read
    rows = [row.to_dict() for row in RunHistory(output_dir(settings)).rows()]
    text = _jsonl(rows) if export_format == "jsonl" else _csv(rows)
    if out is None:
        print(text, end="")
    else:
        write_named_output(out, "--out", lambda path: path.write_text(text, encoding="utf-8"))
        print(f"{len(rows)} runs written to {out}")


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # Lists and objects (OOM adjustments, pauses) stay readable as JSON in one cell.
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return buffer.getvalue()
