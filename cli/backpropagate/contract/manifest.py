"""manifest.json: every artifact a run has produced, with its size and sha256, and the versions that made it."""

import json
from pathlib import Path

from backpropagate.contract.files import atomic_write_text, sha256_file


def describe(kind: str, file: Path, root: Path) -> dict:
    """One artifact row for ``file``, its path relative to the run folder."""
    return {"kind": kind, "path": str(file.relative_to(root)), "bytes": file.stat().st_size,
            "sha256": sha256_file(file)}


def record_artifacts(path: Path, run_id: str, kinds: set[str], artifacts: list[dict], versions: dict,
                     parent_run: str | None = None) -> None:
    """Replace the rows of ``kinds`` with ``artifacts``, keeping what other stages recorded; ``parent_run``
    names the run this one started from (a campaign's previous run)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {"run_id": run_id, "parent_run": None, "versions": {}, "artifacts": []}
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["kind"] not in kinds] + artifacts
    manifest["versions"] = {**manifest.get("versions", {}), **versions}
    if parent_run:
        manifest["parent_run"] = parent_run
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
