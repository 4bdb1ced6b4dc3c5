"""The runs pages: the history, one run (settings, live chart, log, checkpoints, artifacts and their
downloads), its event and log streams, Stop and Resume."""

import json
import os

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from backpropagate.contract import events as event_types
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.event_log import read_events
from backpropagate.contract.history import STATUSES, RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.quality import read_report
from backpropagate.contract.records import select_runs
from backpropagate.contract.redact import redact_data
from backpropagate.runs.ownership import shown_status
from backpropagate.ui.chat import DEFAULT_TOKENS, MAX_TOKENS
from backpropagate.ui.downloads import artifacts, download
from backpropagate.ui.pages import render
from backpropagate.ui.stream import (STOPPED, eval_points, event_messages, follow, log_messages, log_tail,
                                     progress_points)


RESUMABLE = ("interrupted", "failed", "dead")  # what `backprop resume` takes on


def runs_page(request: Request) -> Response:
    workspace = request.app.state.config.sandbox.root
    status = request.query_params.get("status") or None
    model = request.query_params.get("model") or None
    rows = select_runs(RunHistory(workspace).rows(), status if status in STATUSES else None, model, None)
    return render(request, "runs.html", {"rows": rows, "statuses": STATUSES, "status": status, "model": model or ""})


def run_page(request: Request) -> Response:
    row, folder = _run(request)
    if row.stage == "campaign":
        return RedirectResponse(f"/campaigns/{row.run_id}", status_code=303)
    events = read_events(folder.events)
    jobs = request.app.state.jobs
    export_job = jobs.latest(row.run_id, "export")
    ollama_job = jobs.latest(row.run_id, "ollama")
    verify = _json(folder.verify)
    report = None
    try:
        report = read_report(folder.quality)
    except BackpropError:
        pass
    context = {
        "row": row, "spec": _hidden(redact_data(_json(folder.spec) or {})),
        "points": progress_points(events), "evals": eval_points(events), "after": events[-1][0] if events else 0,
        "training": jobs.active(row.run_id, "train") is not None,
        "checkpoints": _listing(folder.checkpoints), "artifacts": artifacts(folder),
        "verify": verify, "report": report, "export_job": export_job, "ollama_job": ollama_job,
        "chat_gguf": folder.exported_gguf(), "chat_max_tokens": MAX_TOKENS, "chat_tokens": DEFAULT_TOKENS,
    }
    # Only the latest attempt's errors: a resumed run's earlier stop or failure is history, not its state.
    starts = [number for number, e in events if isinstance(e.event, event_types.Started) and e.stage == "train"]
    latest = max(starts, default=0)
    failures = [e.event for number, e in events if isinstance(e.event, event_types.Error) and number >= latest]
    context["errors"] = [e for e in failures if e.code != STOPPED]
    context["stopped"] = row.status == "interrupted" or any(e.code == STOPPED for e in failures)
    context["resumable"] = (not context["training"] and row.stage != "campaign"
                            and shown_status(row.status, folder.root) in RESUMABLE)
    # Replay: the same model, data and settings as a new run, for any run that trained and has ended.
    context["replayable"] = not context["training"] and row.stage != "campaign" and row.status != "running"
    context["stopped_code"] = STOPPED
    context["log"], context["log_after"] = log_tail(folder.log)
    return render(request, "run.html", context)


async def run_events(request: Request) -> Response:
    row, folder = _run(request)
    return _stream(request, row, event_messages(folder.events))


async def run_log(request: Request) -> Response:
    row, folder = _run(request)
    return _stream(request, row, log_messages(folder.log))


def _stream(request: Request, row, read_after) -> Response:
    """Server-sent messages from ``read_after``, from the id the client last had, until the run is over."""
    header = request.headers.get("last-event-id")
    text = header if header is not None else request.query_params.get("after", "0")
    after = int(text) if text.isdigit() else 0
    workspace, jobs = request.app.state.config.sandbox.root, request.app.state.jobs

    def is_over() -> bool:
        if jobs.active(row.run_id) is not None:
            return False
        current = RunHistory(workspace).get(row.run_id)
        return current is None or current.status != "running"

    return StreamingResponse(follow(read_after, after, is_over, request.is_disconnected),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def stop_run(request: Request) -> Response:
    row, _ = _run(request)
    request.app.state.jobs.stop(row.run_id)
    return RedirectResponse(f"/runs/{row.run_id}", status_code=303)


async def resume_run(request: Request) -> Response:
    """`backprop resume` for a stopped or failed run, in its own folder, followed by its page like a new run."""
    row, folder = _run(request)
    jobs = request.app.state.jobs
    if jobs.active(row.run_id) is None and shown_status(row.status, folder.root) in RESUMABLE:
        # On the runtime it ran on: its checkpoint and image are there.
        runtime = [f"--runtime={row.runtime}"] if row.runtime else []
        jobs.start("train", ["resume", row.run_id, *runtime], run_id=row.run_id)
    return RedirectResponse(f"/runs/{row.run_id}", status_code=303)


def run_file(request: Request) -> Response:
    _, folder = _run(request)
    return download(request, folder)


def _run(request: Request):
    """The history row and folder of the run in the URL; 404 when the UI's workspace has no such run."""
    from starlette.exceptions import HTTPException

    workspace = request.app.state.config.sandbox.root
    run_id = request.path_params["run_id"]
    row = RunHistory(workspace).get(run_id)
    if row is None:
        raise HTTPException(404, f"no run {run_id} in {workspace}")
    return row, RunFolder.of(workspace, row.run_id)


def _json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _hidden(value):
    """Tokens stay off every page: besides the usual redaction, any value equal to a token in the environment."""
    secrets = {os.environ[name] for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if os.environ.get(name)}
    if isinstance(value, dict):
        return {key: _hidden(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hidden(item) for item in value]
    if isinstance(value, str) and any(secret in value for secret in secrets):
        return "***"
    return value


def _listing(folder):
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
