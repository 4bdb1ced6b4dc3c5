"""Export (merged, GGUF with its quantization and verification), Ollama registration, and chat with the GGUF."""

import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from backpropagate.contract.specs import QUANTIZATIONS
from backpropagate.options import option_for
from backpropagate.runs.exports import EXPORT_FORMATS
from backpropagate.ui.chat import MAX_PROMPT_CHARS, answer, max_tokens_of
from backpropagate.ui.routes_runs import _run

_OLLAMA_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[a-zA-Z0-9._-]+)?$")


async def start_export(request: Request) -> Response:
    row, _ = _run(request)
    form = await request.form()
    export_format = str(form.get("format", "merged"))
    arguments = ["export", row.run_id, f"--format={export_format if export_format in EXPORT_FORMATS else 'merged'}"]
    if export_format in ("gguf",):
        quantization = str(form.get("quantization", "q4_k_m"))
        arguments.append(f"--quantization={quantization if quantization in QUANTIZATIONS else 'q4_k_m'}")
    if export_format in ("gguf", "lora-gguf") and not form.get("verify"):
        arguments.append("--no-verify")
    if form.get("runtime") in option_for("runtime").choices:
        arguments.append(f"--runtime={form['runtime']}")
    _start_once(request, "export", row.run_id, arguments)
    return RedirectResponse(f"/runs/{row.run_id}#export", status_code=303)


async def register_ollama(request: Request) -> Response:
    row, _ = _run(request)
    form = await request.form()
    name = str(form.get("name", "")).strip() or row.run_id[:8]
    if not _OLLAMA_NAME.match(name):
        name = row.run_id[:8]
    _start_once(request, "ollama", row.run_id, ["ollama", "register", row.run_id, f"--name={name}"])
    return RedirectResponse(f"/runs/{row.run_id}#ollama", status_code=303)


async def chat(request: Request) -> Response:
    """One question to the run's GGUF, the answer streamed piece by piece (server-sent events)."""
    row, folder = _run(request)
    form = await request.form()
    prompt = str(form.get("prompt", "")).strip()
    lock = request.app.state.chat_lock
    if folder.exported_gguf() is None:
        return PlainTextResponse("This run has no GGUF yet: export it with format gguf first.", status_code=404)
    if not prompt or len(prompt) > MAX_PROMPT_CHARS:
        return PlainTextResponse(f"Ask a question of 1 to {MAX_PROMPT_CHARS:,} characters.", status_code=400)
    if lock.locked():
        return PlainTextResponse("Another answer is being generated: ask again once it is done.", status_code=409)
    stream = answer(row.run_id, request.app.state.config.sandbox.root, prompt,
                    max_tokens_of(str(form.get("max_tokens", ""))), lock)
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _start_once(request: Request, kind: str, run_id: str, arguments: list[str]) -> None:
    """One job of a kind per run at a time: a second click while one works does not start another."""
    jobs = request.app.state.jobs
    if jobs.active(run_id) is None:
        jobs.start(kind, arguments, run_id=run_id)
