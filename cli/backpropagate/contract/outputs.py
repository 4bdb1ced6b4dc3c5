"""What the product may write: the one place that decides, for a file a user named and for its own files.

A file the user named (``show-run --plot``, ``export-runs --out``) is written only as a regular file in a
folder that already exists: the product never creates folders outside the user's workspace, and never
replaces or writes through a device, pipe, socket or folder (``/dev/full``, ``/dev/null`` as root), nor a
symlink that leads to one. The bytes go to a fresh temporary file beside the target, which then replaces
it: a reader never sees half a file, and the temporary name is new each time, so nothing planted under a
fixed name is written through either.
"""

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract.errors import BackpropError


def named_output(path: Path, flag: str) -> Path:
    """The real path a user-named output goes to (symlinks followed), or the coded refusal; creates nothing."""
    path = Path(path).expanduser()
    real = Path(os.path.realpath(path))
    reason = not_a_regular_file(real)
    if reason:
        raise BackpropError("CONFIG_OUTPUT_NOT_A_FILE", flag=flag, path=path, reason=reason)
    if not real.parent.is_dir():
        raise BackpropError("CONFIG_OUTPUT_FOLDER_MISSING", flag=flag, path=path, folder=real.parent)
    return real


def write_named_output(path: Path, flag: str, write: Callable[[Path], None]) -> Path:
    """Check ``path`` as ``named_output`` does, let ``write`` fill a temporary file beside it, then put it in place."""
    real = named_output(path, flag)
    replace_with(real, write, lambda reason: BackpropError("CONFIG_OUTPUT_NOT_A_FILE", flag=flag, path=path,
                                                           reason=reason))
    return real


def replace_with(target: Path, write: Callable[[Path], None],
                 refusal: Callable[[str], BackpropError] | None = None) -> None:
    """Write ``target`` whole through a fresh temporary file in its folder; never over what is not a regular file.

    The target is checked again just before the replace, so what appeared there while ``write`` ran is
    refused as well. ``refusal`` makes the coded error; by default, a workspace file in the way."""
    refusal = refusal or (lambda reason: BackpropError("STATE_PATH_NOT_A_FILE", path=target, reason=reason))
    fd, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(scratch))
        reason = not_a_regular_file(target)
        if reason:
            raise refusal(reason)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` must not be written over (it exists and is not a regular file), or None when it may be."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "it is a symlink"
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"it is {kind}, not a regular file"
