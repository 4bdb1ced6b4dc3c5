"""Who owns a run: the host process that holds the run folder's ``owner.lock`` while it runs it.

The lock is an OS file lock (``flock`` on POSIX, ``msvcrt`` on Windows, through filelock), which
the kernel drops the moment its process dies, however it dies: ``kill -9``, the OOM killer, a
power cut (after the reboot, no lock is held). So "is the owner alive?" needs no pid, clock or
heartbeat, which a reused pid, a host renamed after a reboot or a stopped laptop would fool:
whoever can take the lock knows the last owner is gone. ``owner.json`` beside it only says who
took it, for the message a second claimant gets. A campaign is held the same way, through its
``campaign.lock``, by the process that runs it (`multi-run`, or `resume` of the campaign).
"""

import dataclasses
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from backpropagate.contract.campaign import CampaignFolder
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.history import HistoryRow

LOCK_FILE = "owner.lock"
OWNER_FILE = "owner.json"


@contextmanager
def owning(run_dir: Path, run_id: str):
    """Hold the run for the block; STATE_RUN_IN_USE when a live process holds it already."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BackpropError("STATE_RUN_IN_USE", run_id=run_id, owner=owner_of(run_dir)) from None
    try:
        atomic_write_text(run_dir / OWNER_FILE, json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        yield
    finally:
        lock.release()


def owner_alive(run_dir: Path, lock: Path | None = None) -> bool:
    """Whether a live process holds the run (or ``lock``). A folder that never had a lock has no live owner."""
    from filelock import FileLock, Timeout

    path = Path(lock) if lock is not None else Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    try:
        with FileLock(str(path), timeout=0):
            return False
    except Timeout:
        return True
    except OSError:  # a read-only workspace: the lock cannot be tried, so nobody is taken for dead
        return True


def shown_status(status: str, run_dir: Path, lock: Path | None = None) -> str:
    """The status to show a user: a ``running`` row whose owner is gone is ``dead``."""
    return "dead" if status == "running" and not owner_alive(run_dir, lock) else status


def as_shown(row: HistoryRow, output: Path) -> HistoryRow:
    """The row as list-runs and show-run present it: with its shown status."""
    run_dir = Path(output) / row.run_id
    lock = CampaignFolder.of(output, row.run_id).lock if row.stage == "campaign" else None
    status = shown_status(row.status, run_dir, lock)
    return row if status == row.status else dataclasses.replace(row, status=status)


def owner_of(run_dir: Path) -> str:
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text())
        return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"
