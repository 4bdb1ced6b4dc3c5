"""A copy of the host package with one file edited, and a way to run Python against it in a child process.

How a test shows that adding something takes one place: it edits that place in the copy, and reads
the result off everything derived from it.
"""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def edited_package(tmp_path: Path, relative: str, anchor: str, inserted: str) -> Path:
    """Copy cli/backpropagate and insert ``inserted`` before the first ``anchor`` of ``relative``; returns the copy."""
    import shutil

    copy = tmp_path / "cli" / "backpropagate"
    shutil.copytree(ROOT / "cli" / "backpropagate", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / relative
    text = target.read_text()
    assert anchor in text, f"{relative} has no {anchor!r}"
    target.write_text(text.replace(anchor, inserted + anchor, 1))
    return copy


def run_python(copy: Path, code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{copy.parent}:{ROOT / 'stages'}", "NO_COLOR": "1",
           "COLUMNS": "200", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)
