"""Writing files so that a crash never leaves half of one: write aside, fsync, rename."""

import errno
import hashlib
import os
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """A workspace file, written whole (its folder is created: it lies in the workspace or a run folder)."""
    from backpropagate.contract.outputs import replace_with

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(scratch: Path) -> None:
        with open(scratch, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    replace_with(path, write)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# How a full disk reads where it is not an OSError with its errno: safetensors' Rust IoError,
# torch's zip writer (which reports only "file write failed"), and quota errors.
_DISK_FULL_TEXTS = ("No space left on device", "StorageFull", "Disk quota exceeded", "file write failed")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised from, is a write that found the disk full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(exc) for text in _DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def sha256_file(path: Path) -> str:
    """Hex sha256, streamed so that a large file is never held whole."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def publish_folder(partial: Path, final: Path) -> None:
    """Move a completed ``<name>.partial`` folder into place: fsync its files, replace, fsync the parent."""
    import shutil

    for file in partial.rglob("*"):
        if file.is_file():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    fsync_dir(final.parent)
