"""Opening a file the user named (--data, --eval-prompts, --auth-file, --token-file, ...): regular files only.

A pipe, a device or a socket is refused at once, never read: a run reads its data more than once (the
host checks it, the stage trains on it, replay hashes it), a FIFO with no writer blocks its reader
forever and /dev/zero never ends. The file is opened without blocking and checked on the open
descriptor, so what is checked is what is read.
"""

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from backpropagate.contract.errors import BackpropError

# The file name the fix for a pipe suggests writing to.
_EXAMPLE_NAMES = {"--eval-data": "eval.jsonl", "--eval-prompts": "prompts.jsonl", "--auth-file": "auth.txt",
                  "--template": "template.txt", "--token-file": "token.txt", "TARGET": "model.gguf"}


class FileRefused(Exception):
    """Why a named file cannot be read, and what to pass instead; each caller gives it its own code."""

    def __init__(self, reason: str, remedy: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.remedy, self.missing = reason, remedy, missing


def open_user_file(path: Path, option: str, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary, or FileRefused saying why not in words that fit ``option``
    (``what`` names the kind of file it takes)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileRefused("it does not exist", f"check the path given to {option}", missing=True) from None
    except OSError as exc:
        raise _refused(Path(path), option, exc) from None
    try:
        kind = _not_regular(os.fstat(fd).st_mode)
        if kind == "a directory":
            raise FileRefused("it is a directory", f"pass the {what} inside it to {option}")
        if kind:
            example = _EXAMPLE_NAMES.get(option, "data.jsonl")
            raise FileRefused(f"it is {kind}, which is read only once or never ends",
                              f"write it to a file first (for example: cmd > {example}), then pass {example} "
                              f"to {option}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_user_file(path: str | Path, option: str, what: str = "file") -> Path:
    """The absolute, link-free path of a readable regular file (FileRefused otherwise)."""
    path = Path(path).expanduser()
    open_user_file(path, option, what).close()
    return path.resolve()


def read_user_text(path: Path, option: str, limit: int, what: str = "file") -> str:
    """The UTF-8 text of a small file the user named; INPUT_FILE_UNREADABLE when it cannot be that."""
    try:
        with open_user_file(Path(path).expanduser(), option, what) as handle:
            data = handle.read(limit + 1)
    except FileRefused as refused:
        raise BackpropError("INPUT_FILE_UNREADABLE", option=option, path=path, reason=refused.reason,
                            remedy=refused.remedy) from None
    if len(data) > limit:
        raise BackpropError("INPUT_FILE_UNREADABLE", option=option, path=path, reason=f"it is over {limit:,} bytes",
                            remedy=f"pass the {what} itself to {option}, not a larger file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BackpropError("INPUT_FILE_UNREADABLE", option=option, path=path, reason=f"it is not UTF-8 (byte "
                            f"0x{data[exc.start]:02x} at offset {exc.start})",
                            remedy=f"save it as UTF-8, then pass it to {option}") from None


def check_or_refuse(path: Path, option: str, what: str = "file") -> None:
    """INPUT_FILE_UNREADABLE unless ``path`` is a regular file this user may read."""
    try:
        open_user_file(Path(path), option, what).close()
    except FileRefused as refused:
        raise BackpropError("INPUT_FILE_UNREADABLE", option=option, path=path, reason=refused.reason,
                            remedy=refused.remedy) from None


def _not_regular(mode: int) -> str:
    """What a file that is not a regular file is, in words; empty for a regular file."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe (a FIFO, <(cmd) or a piped /dev/stdin)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refused(path: Path, option: str, exc: OSError) -> FileRefused:
    if exc.errno == errno.ELOOP:
        return FileRefused("it is a symbolic link that leads back to itself", "point the link at the file (ls -l "
                           f"shows where it leads), or pass the file itself to {option}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileRefused("this user may not read it",
                           f"make it readable (chmod u+r {path}), or pass a copy you can read")
    if exc.errno == errno.ENXIO:  # a Unix socket
        return FileRefused("it is a socket, which is read only once or never ends",
                           f"write it to a file first, then pass that file to {option}")
    return FileRefused(exc.strerror or str(exc), f"check the path given to {option}")
