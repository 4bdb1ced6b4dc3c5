"""A stage lives only as long as its host: when the host dies (kill -9, a closed terminal), the stage goes too.

The host starts the stage with a pipe as its standard input (in Docker, the container's attached stdin)
and never writes to it; the kernel closes the host's end when the host dies, however it dies. A thread
here waits for that end of file, then kills the stage's whole process group with SIGKILL: the stage and
what it started (llama.cpp's converter), since nobody is left to read a clean ending, and the run resumes
from its last atomic checkpoint. A parent-death signal (prctl) would take the stage alone, leaving its
children to write on, and exists on Linux only; a pipe ends wherever pipes do, in a container too.

The host asks for this through ``HOST_WATCH_VARIABLE``: a stage started by hand or by
``docker compose run`` (stdin empty or a terminal) watches nothing.
"""

import os
import signal
import threading

from backpropagate.contract.stages import HOST_WATCH_VARIABLE

EXIT_HOST_GONE = 137  # as if killed: no event or status reaches anyone


def watch_host() -> None:
    """Start the watch when the host asked for it; call before the ML stack loads (that takes seconds)."""
    if os.environ.get(HOST_WATCH_VARIABLE) != "stdin":
        return
    threading.Thread(target=_wait_for_the_host, args=(os.dup(0),), daemon=True, name="host-watch").start()


def _wait_for_the_host(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):  # end of file: the host's end is closed
                break
        except InterruptedError:
            continue
        except OSError:
            break
    _end_with_the_host()


def _end_with_the_host() -> None:
    if hasattr(os, "killpg") and os.getpgrp() == os.getpid():  # the stage leads its group (local, tini)
        os.killpg(0, signal.SIGKILL)
    os._exit(EXIT_HOST_GONE)
