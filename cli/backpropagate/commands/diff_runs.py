"""`backprop diff-runs`: what differs between two runs, side by side."""

from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.records import comparison, load_record
from backpropagate.output import Output, for_people, table

EXAMPLES = """
Examples:

  backprop diff-runs 3f2a 9c1e
"""

def diff_runs(
    first: Annotated[str, typer.Argument(help="Run id or prefix.")],
    second: Annotated[str, typer.Argument(help="Run id or prefix.")],
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Show the settings and results that differ between two runs, and both final losses."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    a, b = (load_record(output_dir(settings), run) for run in (first, second))
    data = comparison(a, b)
    Output(json_mode=settings.log_json).result(_text(data), data)


def _text(data: dict) -> str:
    """The fields that differ, then both final losses (always shown, so not repeated among the fields)."""
    rows = [("field", data["a"][:8], data["b"][:8])]
    rows += [(key, for_people(a), for_people(b)) for key, (a, b) in data["differences"].items() if key != "final_loss"]
    rows.append(("final loss", *(for_people(x) if isinstance(x, float) else "-" for x in data["final_loss"])))
    return table(rows)
