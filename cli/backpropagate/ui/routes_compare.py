"""Two runs side by side: the fields `diff-runs` reports (the same comparison) and both loss curves on one chart."""

from starlette.requests import Request
from starlette.responses import Response

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.records import comparison, load_record, select_runs
from backpropagate.ui.pages import render


def compare_page(request: Request) -> Response:
    workspace = request.app.state.config.sandbox.root
    first, second = (request.query_params.get(key, "").strip() for key in ("a", "b"))
    rows = [row for row in select_runs(RunHistory(workspace).rows()) if row.stage != "campaign"]
    context = {"rows": rows, "a": first, "b": second, "diff": None, "curves": [], "error": None}
    if not (first and second):
        return render(request, "compare.html", context)
    try:
        records = [load_record(workspace, run) for run in (first, second)]
    except BackpropError as error:
        return render(request, "compare.html", {**context, "error": f"{error}  (fix: {error.fix})"}, status_code=400)
    context["diff"] = comparison(*records)
    context["curves"] = [{"run": record.row.run_id, "points": [{"step": step, "loss": loss} for step, loss
                                                                 in sorted(record.losses.items())]}
                         for record in records]
    return render(request, "compare.html", context)
