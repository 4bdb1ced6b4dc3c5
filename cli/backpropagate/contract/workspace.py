"""The workspace folder (--output): checked before anything is written into it.

A command that writes checks the whole path first and creates nothing when it cannot work:
a file where the folder should be, a read-only mount, a folder it may not write to.
"""

import errno
import os
from pathlib import Path

from backpropagate.contract.errors import BackpropError


def check_readable(output: Path) -> None:
    """A workspace that exists must be a folder; one that does not exist is simply empty."""
    blocker = file_in_the_way(Path(output))
    if blocker is not None:
        raise BackpropError("CONFIG_OUTPUT_NOT_A_FOLDER", path=output, blocker=blocker)


def check_writable(output: Path) -> None:
    """Refuse, before anything is created, a workspace that cannot be written."""
    output = Path(output).expanduser().absolute()
    check_readable(output)
    existing = next(folder for folder in (output, *output.parents) if folder.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        # access() answers EROFS for a read-only mount even to root, who may write anywhere else.
        try:
            read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
        except OSError:
            read_only = False
        reason = "it is on a read-only filesystem" if read_only else f"{existing} is not writable by this user"
        raise BackpropError("CONFIG_OUTPUT_NOT_WRITABLE", path=output, reason=reason)


def file_in_the_way(output: Path) -> Path | None:
    """The path itself, or a part of it, that exists and is not a folder."""
    for part in (output, *output.parents):
        try:
            if part.exists() and not part.is_dir():
                return part
        except OSError as exc:  # a symlink loop in the path
            if exc.errno == errno.ELOOP:
                return part
            raise
    return None
