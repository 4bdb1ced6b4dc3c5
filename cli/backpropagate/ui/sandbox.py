"""The one folder the UI reads and writes, and the check that keeps every path inside it.

The folder is the UI's workspace (run folders, run_history.json) with uploads in ``datasets/``.
Each upload is stored by content, as ``datasets/by-sha256/<sha256><suffix>`` (read-only, never
replaced), and its name in ``datasets/`` is a link to that copy; a run is given the stored copy, so a
later upload under the same name changes what the name shows, never what an earlier run trained on,
and `backprop replay` finds its exact data.
A user-supplied path is resolved (symlinks followed) before it is compared, so ``..``, an
absolute path or a link pointing out of the folder are all refused the same way.
"""

import os
import secrets
import shutil
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.workspace import file_in_the_way
from backpropagate.contract.files import sha256_file
from backpropagate.contract.outputs import not_a_regular_file

DATASETS = "datasets"
STORE = "by-sha256"

# Folders the UI never uses as its own, whatever the environment says: system and credential places.
_DENIED = ("/etc", "/bin", "/sbin", "/usr", "/boot", "/dev", "/proc", "/sys", "/var/lib", "/lib",
           "~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gcloud", "~/.kube", "~/.docker", "~/.azure",
           "C:/Windows", "C:/Windows/System32", "C:/Program Files")


def denied_folder(folder: Path) -> str | None:
    """The denylisted folder that ``folder`` is, lies in or holds (``/home`` holds ``~/.ssh``); None if allowed."""
    resolved = Path(os.path.realpath(folder.expanduser()))
    for entry in _DENIED:
        if ":" in entry and os.name != "nt":
            continue  # a drive path names nothing on this system
        denied = Path(os.path.realpath(Path(entry).expanduser()))
        if _lower(resolved) == _lower(denied) or _is_below(resolved, denied) or _is_below(denied, resolved):
            return entry
    if resolved == Path.home().resolve():
        return "~ (the home folder itself)"
    return None


def _lower(path: Path) -> str:
    return path.as_posix().lower().rstrip("/")  # Windows paths compare without case


def _is_below(path: Path, folder: Path) -> bool:
    return _lower(path).startswith(_lower(folder) + "/")


class Sandbox:
    def __init__(self, root: Path) -> None:
        denied = denied_folder(root)
        if denied:
            raise BackpropError("CONFIG_UI_OUTPUT_DENIED", path=root, denied=denied)
        self.root = Path(os.path.realpath(root.expanduser()))
        self.datasets = self.root / DATASETS
        blocker = file_in_the_way(self.datasets)
        if blocker is not None:
            raise BackpropError("CONFIG_UI_FOLDER_UNUSABLE", path=root, reason=f"{blocker} is a file, not a folder",
                                remedy="set BACKPROPAGATE_UI__OUTPUT_DIR to a folder (one that does not exist yet is "
                                       f"created), or move {blocker} out of the way")
        try:
            self.datasets.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackpropError("CONFIG_UI_FOLDER_UNUSABLE", path=root, reason=exc.strerror or str(exc),
                                remedy="set BACKPROPAGATE_UI__OUTPUT_DIR to a folder this user may write") from None

    def resolve(self, relative: str, base: Path | None = None) -> Path:
        """``relative`` (as a user typed or posted it) inside ``base`` (the sandbox), or INPUT_UI_PATH_OUTSIDE."""
        base = self.root if base is None else base
        if not relative or "\x00" in relative:
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=relative, root=self.root, reason="no file named")
        candidate = Path(relative.replace("\\", "/"))
        if candidate.is_absolute() or relative.startswith(("/", "\\", "~")) or ":" in candidate.parts[0]:
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=relative, root=self.root,
                                reason="absolute paths are refused")
        if ".." in candidate.parts:
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=relative, root=self.root,
                                reason="'..' is refused")
        resolved = Path(os.path.realpath(base / candidate))
        if not resolved.is_relative_to(self.root):
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=relative, root=self.root,
                                reason=f"it leads out of the folder through a symlink, to {resolved}")
        return resolved

    def dataset(self, name: str) -> Path:
        """An existing dataset file in ``datasets/``, by the name shown in the picker."""
        path = self.resolve(name, self.datasets)
        if not path.is_file():
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=name, root=self.root, reason="no such file")
        return path

    def model(self, value: str) -> str:
        """A model folder inside the sandbox (as an absolute path), or else the value as a hub id."""
        path = self.resolve(value)
        return str(path) if path.exists() else value

    def dataset_names(self) -> list[str]:
        return sorted(p.name for p in self.datasets.iterdir() if p.is_file() and not p.name.startswith("."))

    def upload_target(self, filename: str) -> Path:
        """Where an upload called ``filename`` goes: its base name only, inside ``datasets/``."""
        name = Path(filename.replace("\\", "/")).name
        if not name or name.startswith(".") or not name.endswith((".jsonl", ".json")):
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=filename, root=self.root,
                                reason="uploads are .jsonl or .json files with a plain name")
        return self.resolve(name, self.datasets)

    def keep_upload(self, scratch: Path, target: Path) -> Path:
        """Store a checked upload by its content and point its name at it; returns the stored copy."""
        stored = self._store(scratch)
        reason = not_a_regular_file(target)
        if reason:
            raise BackpropError("INPUT_UI_PATH_OUTSIDE", path=target.name, root=self.root,
                                reason=f"{target.name}: {reason}")
        entry = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            _link_or_copy(stored, entry)
            os.replace(entry, target)  # the name now shows this content; the earlier content stays stored
        finally:
            entry.unlink(missing_ok=True)
        return stored

    def stored_copy(self, name: str) -> Path:
        """The stored copy of the dataset a name shows: what a run trains on and its spec names.
        A file put into ``datasets/`` by hand is stored on first use."""
        return self._store(self.dataset(name), keep_source=True)

    def _store(self, source: Path, keep_source: bool = False) -> Path:
        folder = self.datasets / STORE
        folder.mkdir(exist_ok=True)
        stored = folder / f"{sha256_file(source)}{source.suffix}"
        if stored.exists():
            if not keep_source:
                source.unlink()
            return stored
        entry = folder / f".{stored.name}.{secrets.token_hex(8)}.tmp"
        try:
            shutil.copyfile(source, entry) if keep_source else os.replace(source, entry)
            os.chmod(entry, 0o444)  # a stored copy is never written again
            os.replace(entry, stored)
        finally:
            entry.unlink(missing_ok=True)
        return stored


def _link_or_copy(stored: Path, entry: Path) -> None:
    """The name as a hard link to the stored copy (no second copy of the bytes); a copy where links fail."""
    try:
        os.link(stored, entry)
    except OSError:
        shutil.copyfile(stored, entry)
