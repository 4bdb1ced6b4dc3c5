"""`backprop list-runs`: the runs recorded in the workspace, newest first."""

from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.records import select_runs
from backpropagate.output import Output, table
from backpropagate.runs.ownership import as_shown

EXAMPLES = """
Examples:

  backprop list-runs

  backprop list-runs --status completed --limit 5 --json

  backprop list-runs --model Qwen
"""

COLUMNS = ("run", "status", "model", "dataset", "steps", "final loss", "duration", "runtime", "started")


def list_runs(
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status (running, completed, failed, "
                                                    "interrupted, dead: running when its host died).")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs whose model contains this text.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many runs.")] = None,
) -> None:
    """List recorded runs, newest first."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    output = output_dir(settings)
    rows = select_runs([as_shown(row, output) for row in RunHistory(output).rows()], status, model, limit)
    data = {"runs": [row.to_dict() for row in rows]}
    out = Output(json_mode=settings.log_json)
    if out.json_mode:
        out.result("", data)
        return
    out.result(_table(rows) if rows else "no runs recorded in " + str(output), data)


def _table(rows: list[HistoryRow]) -> str:
    def cells(row: HistoryRow) -> tuple[str, ...]:
        loss, duration = row.final_loss, row.duration_s
        return (
            _name(row), row.status, _last_part(row.model or ""), _last_part(row.dataset or ""),
            str(row.steps_done or row.steps or ""),
            f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
            f"{duration:.0f}s" if isinstance(duration, (int, float)) else "-",
            row.runtime or "", (row.started_at or "")[:19],
        )

    return table([COLUMNS] + [cells(row) for row in rows])


def _name(row: HistoryRow) -> str:
    if row.stage == "campaign":
        return f"{row.run_id[:8]} campaign of {len(row.campaign_runs)}"
    if row.campaign:
        return f"{row.run_id[:8]} run {row.campaign_index} of {row.campaign[:8]}"
    return row.run_id[:8]


def _last_part(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
