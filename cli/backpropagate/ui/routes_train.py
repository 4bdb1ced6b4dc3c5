"""New run: upload a dataset into the sandbox (checked row by row), pick one, preview it as the model sees it,
and start training; or pick several and start a campaign, one run per dataset; or replay a finished run."""

import secrets

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from backpropagate.config import Settings, load_settings
from backpropagate.contract.dataset import load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.merges import MERGES
from backpropagate.contract.redact import redact
from backpropagate.options import campaign_options
from backpropagate.ui.estimate import plan_estimate
from backpropagate.ui.form import device_note, form_fields, grouped, model_choices, train_flags
from backpropagate.ui.pages import render
from backpropagate.ui.preview import bars, preview

START_TIMEOUT_S = 300  # from the click to the run's first event: the stage imports the ML stack first


def new_run_page(request: Request) -> Response:
    return _form(request, {"picked": request.query_params.get("dataset", "")})


async def upload_dataset(request: Request) -> Response:
    """Keep an uploaded file only when every row is valid; otherwise list each bad row and keep nothing."""
    config = request.app.state.config
    sandbox = config.sandbox
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > config.max_upload_bytes:
        error = BackpropError("INPUT_UPLOAD_TOO_LARGE", limit_mb=config.max_upload_bytes // (1024 * 1024))
        return _form(request, {"upload_error": _shown(error)}, status_code=413)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if upload is None or not getattr(upload, "filename", None):
        return _form(request, {"upload_error": "Choose a file to upload."}, status_code=400)
    try:
        target = sandbox.upload_target(upload.filename)
    except BackpropError as error:
        return _form(request, {"upload_error": _shown(error)}, status_code=400)
    scratch = sandbox.datasets / f".upload-{secrets.token_hex(8)}{target.suffix}"
    try:
        with scratch.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
        problems, summary = _check_rows(scratch, target.name)
        if problems:
            return _form(request, {"upload_error": f"{target.name} was not kept: fix the rows below and upload "
                                                   "it again.", "problems": problems}, status_code=400)
        sandbox.keep_upload(scratch, target)
    except BackpropError as error:
        return _form(request, {"upload_error": _shown(error)}, status_code=400)
    finally:
        scratch.unlink(missing_ok=True)
    return RedirectResponse(f"/runs/new?dataset={target.name}&checked={summary}", status_code=303)


async def start_run(request: Request) -> Response:
    config, jobs = request.app.state.config, request.app.state.jobs
    _, values = await _posted(request)
    try:
        data = config.sandbox.stored_copy(values.get("dataset", ""))
        model = config.sandbox.model(values.get("model", ""))
    except BackpropError as error:
        return _form(request, {"start_error": _shown(error), "values": values}, status_code=400)
    # Compared with what the child would take by itself (it inherits this environment), not with the form's
    # starting values: a runtime `ui --runtime` chose is passed on like one the user picked.
    arguments = ["train", f"--data={data}", f"--model={model}", *train_flags(values, load_settings())]
    return await _followed(request, jobs.start("train", arguments), values, lambda run_id: f"/runs/{run_id}")


async def plan_page(request: Request) -> Response:
    """What the form's run would take: `backprop plan` for the picked model and the form's memory settings; the
    form comes back as it was sent, with the estimate."""
    config = request.app.state.config
    _, values = await _posted(request)
    try:
        model = config.sandbox.model(values.get("model", ""))
    except BackpropError as error:
        return _form(request, {"plan": {"error": _shown(error)}, "values": values}, status_code=400)
    report = await anyio.to_thread.run_sync(plan_estimate, model, values, load_settings())
    return _form(request, {"plan": report, "values": values}, status_code=400 if "error" in report else 200)


async def replay_run(request: Request) -> Response:
    """`backprop replay RUN`: a new run with that run's model, data (checked by its sha256) and settings, on the
    runtime it ran on; the browser goes to the new run's page, or back to the form with replay's coded error."""
    from starlette.exceptions import HTTPException

    config, jobs = request.app.state.config, request.app.state.jobs
    row = RunHistory(config.sandbox.root).get(request.path_params["run_id"])
    if row is None:
        raise HTTPException(404, f"no run {request.path_params['run_id']} in {config.sandbox.root}")
    runtime = [f"--runtime={row.runtime}"] if row.runtime else []
    return await _followed(request, jobs.start("train", ["replay", row.run_id, *runtime]), {},
                           lambda run_id: f"/runs/{run_id}")


async def preview_dataset(request: Request) -> Response:
    """The picked dataset's first rows through the picked model's chat template, and its token lengths; the
    form comes back as it was sent."""
    config = request.app.state.config
    _, values = await _posted(request)
    try:
        data = config.sandbox.dataset(values.get("dataset", ""))
        model = config.sandbox.model(values.get("model", ""))
    except BackpropError as error:
        return _form(request, {"preview": {"error": _shown(error)}, "values": values}, status_code=400)
    length = values.get("max_seq_length", "")
    max_seq_length = int(length) if length.isdigit() else _in_effect(config).training.max_seq_length
    report = await anyio.to_thread.run_sync(preview, data, model, max_seq_length)
    shown = {"preview": report, "bars": bars(report.get("tokens", {}).get("histogram", [])), "values": values}
    return _form(request, shown, status_code=400 if "error" in report else 200)



async def start_campaign(request: Request) -> Response:
    """`backprop multi-run` with one --data per picked dataset, in the order picked, and the form's run settings
    for every run; the browser goes to the campaign's page."""
    config, jobs = request.app.state.config, request.app.state.jobs
    form, values = await _posted(request)
    names = [str(name) for name in form.getlist("campaign_data")]
    if len(names) < 2 or len(set(names)) < len(names):
        return _form(request, {"start_error": "Pick two or more different datasets for a campaign: one run each.",
                               "values": values}, status_code=400)
    try:
        data = [config.sandbox.stored_copy(name) for name in names]
        model = config.sandbox.model(values.get("model", ""))
    except BackpropError as error:
        return _form(request, {"start_error": _shown(error), "values": values}, status_code=400)
    merge = values.get("campaign_merge") if values.get("campaign_merge") in MERGES else "slao"
    settings = load_settings()
    arguments = ["multi-run", *(f"--data={path}" for path in data), f"--model={model}", f"--merge={merge}",
                 *train_flags(values, settings), *train_flags(values, settings, campaign_options())]

    def campaign_page(run_id: str) -> str:
        row = RunHistory(config.sandbox.root).get(run_id)  # the first events are the first run's: it names the campaign
        return f"/campaigns/{row.campaign if row and row.campaign else run_id}"

    return await _followed(request, jobs.start("campaign", arguments), values, campaign_page)


async def _posted(request: Request):
    """The form, and its single values (stripped, without the CSRF token or the campaign's list of datasets)."""
    form = await request.form()
    return form, {key: str(value).strip() for key, value in form.items() if key not in ("csrf", "campaign_data")}


async def _followed(request: Request, job, values: dict, page_of) -> Response:
    """To the page of what ``job`` started (``page_of(run_id)``) once its first event names it; the form with the
    CLI's coded error when it was refused before a run existed."""
    await anyio.to_thread.run_sync(job.known.wait, START_TIMEOUT_S)
    if job.run_id is None:
        job.done.wait(timeout=10)
        return _form(request, {"start_error": _job_error(job), "values": values}, status_code=400)
    return RedirectResponse(page_of(job.run_id), status_code=303)


def _check_rows(path, name: str) -> tuple[list[str], str]:
    """Each invalid row as `name:LINE: reason`, and a one-line summary of the valid file."""
    try:
        dataset = load_dataset(path, "auto", skip_invalid=True)
    except BackpropError as error:
        return [error.message.replace(str(path), name)], ""
    problems = [f"{name}:{problem.line}: {problem.reason}" for problem in dataset.dropped]
    return problems, f"{len(dataset.examples)} {dataset.format} rows"


def _shown(error: BackpropError) -> str:
    return f"{error}  (fix: {error.fix})"


def _job_error(job) -> str:
    if job.error:
        return f"[{job.error['code']}]: {job.error['message']} (fix: {job.error['fix']})"
    tail = redact("".join(job.stderr_tail)).strip().splitlines()  # a library's line may hold a token
    return tail[-1] if tail else "the run did not start"


def _in_effect(config) -> Settings:
    """The settings a run started here gets when the form is left alone: defaults, environment, `ui --runtime`."""
    return load_settings(overrides={"runtime": config.runtime})


def _form(request: Request, context: dict, status_code: int = 200) -> Response:
    config = request.app.state.config
    values = {"model": config.default_model, **context.pop("values", {})}
    settings = _in_effect(config)
    full = {"datasets": config.sandbox.dataset_names(), "groups": grouped(form_fields(settings, values)),
            "campaign_fields": form_fields(settings, values, campaign_options()),
            "values": values, "models": model_choices(config.sandbox.root), "device_note": device_note(),
            "checked": request.query_params.get("checked", ""),
            "upload_error": None, "problems": [], "start_error": None, "preview": None, "bars": [],
            "picked": values.get("dataset", ""),
            "merges": MERGES.values(), **context}
    return render(request, "new.html", full, status_code=status_code)
