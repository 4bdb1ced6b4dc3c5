"""A campaign's page: its runs in order (status, losses, lambda, links to each run's page), what each
merged adapter kept of every earlier run's held-out prompts and data (the accuracy matrix, the held-out loss),
and the campaign's merged adapter, its files downloadable."""

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from backpropagate.contract.campaign import CampaignFolder, campaign_matrix
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.records import load_record
from backpropagate.runs.ownership import as_shown
from backpropagate.ui.downloads import artifacts
from backpropagate.ui.pages import render


def heatmap(evals: list[dict], count: int) -> list[list[dict | None]]:
    """The held-out loss after run i (row) on run j's data (column), shaded from the lowest of the campaign (0)
    to the highest (1): forgetting shows as a column that darkens downwards. None: not measured, or j > i."""
    losses = [e["eval_loss"] for e in evals if isinstance(e.get("eval_loss"), (int, float))]
    low, high = (min(losses), max(losses)) if losses else (0.0, 0.0)
    found = {(e["after_run"], e["on_run"]): e for e in evals}
    grid = []
    for after in range(1, count + 1):
        row = []
        for on in range(1, count + 1):
            figures = found.get((after, on))
            loss = figures.get("eval_loss") if figures else None
            row.append(None if loss is None else {**figures, "shade": round((loss - low) / (high - low), 3)
                                                  if high > low else 0.0})
        grid.append(row)
    return grid


def accuracy_cells(matrix: dict) -> list[list[dict | None]]:
    """The accuracy matrix as the page's cells: the share right and the count ("5/8"), shaded 0 at full
    accuracy to 1 at none, so forgetting shows as a column that darkens downwards, as in the loss heatmap."""
    return [[None if value is None else {"accuracy": value, "hits": hits, "shade": round(1 - value, 3)}
             for value, hits in zip(values, counts)] for values, counts in zip(matrix["accuracy"], matrix["hits"])]


def campaign_page(request: Request) -> Response:
    workspace = request.app.state.config.sandbox.root
    campaign_id = request.path_params["campaign_id"]
    row = RunHistory(workspace).get(campaign_id)
    if row is None or row.stage != "campaign":
        raise HTTPException(404, f"no campaign {campaign_id} in {workspace}")
    runs = []
    for run_id in row.campaign_runs:
        record = load_record(workspace, run_id)
        curve = [record.losses[step] for step in sorted(record.losses)]
        runs.append({"row": record.row, "first_loss": curve[0] if curve else None,
                     "last_loss": curve[-1] if curve else None})
    campaign = CampaignFolder.of(workspace, row.run_id)
    adapter = campaign.adapter
    files = artifacts(RunFolder(campaign.root))  # downloaded like a run's, from /runs/<campaign_id>/files/
    live = as_shown(row, workspace).status == "running"  # a campaign whose process died is not followed forever
    matrix = campaign_matrix(row.campaign_evals, len(row.campaign_runs))
    measured = {name: any(value is not None for values in matrix[name] for value in values)
                for name in ("accuracy", "eval_loss")}
    return render(request, "campaign.html", {"row": row, "runs": runs, "evals": row.campaign_evals,
                                             "adapter": adapter, "adapter_files": files, "live": live,
                                             "heatmap": heatmap(row.campaign_evals, len(row.campaign_runs))
                                             if measured["eval_loss"] else [],
                                             "matrix": matrix,
                                             "accuracy": accuracy_cells(matrix) if measured["accuracy"] else []})
