"""A run's artifacts as downloads: exactly the files its page lists, streamed, with HTTP range requests.

Only a listed file is served (adapter, merged model, GGUF files, quality report, events, log,
manifest), never anything else in the run folder (its spec may name private paths). The path
is resolved through the sandbox (``..``, absolute paths and symlinks out are refused with
INPUT_UI_PATH_OUTSIDE) and must be a regular file inside the run's own folder. Starlette's
FileResponse streams it in chunks and answers ``Range`` with 206 and Content-Range, or 416.
"""

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.outputs import not_a_regular_file

FOLDERS = ("adapter", "merged", "gguf")  # each file directly inside is an artifact of that kind
FILES = {"report": "quality.json", "events": "events.jsonl", "log": "log.txt", "manifest": "manifest.json"}


def artifacts(folder: RunFolder) -> list[dict]:
    """Each downloadable file of the run: kind, name, path relative to the run folder, size."""
    found = []
    for kind in FOLDERS:
        path = folder.root / kind
        if path.is_dir() and not path.is_symlink():
            found += [_entry(kind, file, f"{kind}/{file.name}") for file in sorted(path.iterdir()) if _regular(file)]
    found += [_entry(kind, folder.root / name, name) for kind, name in FILES.items() if _regular(folder.root / name)]
    return found


def download(request: Request, folder: RunFolder) -> Response:
    """The file at ``path`` (relative to the run folder) when it is one of the run's artifacts."""
    sandbox = request.app.state.config.sandbox
    relative = request.path_params["path"]
    try:
        resolved = sandbox.resolve(relative, folder.root)
    except BackpropError as error:
        return _refused(error, 400)
    listed = {entry["path"] for entry in artifacts(folder)}
    if relative not in listed or not resolved.is_relative_to(os.path.realpath(folder.root)) \
            or not_a_regular_file(resolved):
        return _refused(BackpropError("INPUT_UI_PATH_OUTSIDE", path=relative, root=sandbox.root,
                                      reason="it is not one of this run's artifacts"), 404)
    return FileResponse(resolved, filename=resolved.name, headers={"Cache-Control": "no-store"})


def _refused(error: BackpropError, status: int) -> Response:
    return PlainTextResponse(f"{error}  (fix: {error.fix})", status_code=status)


def _regular(path: Path) -> bool:
    return path.exists() and not_a_regular_file(path) is None


def _entry(kind: str, file: Path, relative: str) -> dict:
    return {"kind": kind, "name": file.name, "path": relative, "bytes": file.stat().st_size}
