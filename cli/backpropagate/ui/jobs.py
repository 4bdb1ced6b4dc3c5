"""Runs the UI started: each is the `backprop` CLI in a child process, with --json on its stdout.

So a UI run is an ordinary run (same planning, session, runtime, history), the UI process
never imports the ML stack, and Stop sends the child SIGINT: exactly what Ctrl-C does in a
terminal (the current step finishes, a checkpoint is saved when asked, the run is `interrupted`).
"""

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backpropagate.contract.events import EventParseError, parse_line


@dataclass
class Job:
    kind: str  # train, export or ollama
    run_id: str | None
    process: subprocess.Popen
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # the CLI's --json failure: code, message, fix, run_id, exit_code
    stderr_tail: deque = field(default_factory=lambda: deque(maxlen=60))
    known: threading.Event = field(default_factory=threading.Event)  # set once run_id is known or the job ended
    done: threading.Event = field(default_factory=threading.Event)
    stderr_read: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return not self.done.is_set()


def _hears_ctrl_c() -> None:
    """In the child: SIGINT's default action, so Stop works even when the UI itself was started with SIGINT
    ignored (in the background of a script, by a service manager), which a child would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Jobs:
    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    def start(self, kind: str, arguments: list[str], run_id: str | None = None) -> Job:
        command = [sys.executable, "-m", "backpropagate", *arguments, "--json", "--output", str(self.workspace)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        # Its own session: a Ctrl-C in the UI's terminal is for the UI, and Stop is for this run.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   text=True, encoding="utf-8", errors="replace", start_new_session=True, env=env,
                                   cwd=self.workspace, preexec_fn=_hears_ctrl_c)
        job = Job(kind, run_id, process)
        if run_id:
            job.known.set()
        with self._lock:
            self._jobs.append(job)
        threading.Thread(target=self._read_stderr, args=(job,), daemon=True).start()
        threading.Thread(target=self._read_stdout, args=(job,), daemon=True).start()
        return job

    def active(self, run_id: str, kind: str | None = None) -> Job | None:
        with self._lock:
            for job in reversed(self._jobs):
                if job.run_id == run_id and job.running and kind in (None, job.kind):
                    return job
        return None

    def latest(self, run_id: str, kind: str) -> Job | None:
        with self._lock:
            return next((job for job in reversed(self._jobs) if job.run_id == run_id and job.kind == kind), None)

    def stop(self, run_id: str) -> bool:
        """Ctrl-C for the run's training: True when there was one to stop."""
        job = self.active(run_id, "train")
        if job is None:
            return False
        job.process.send_signal(signal.SIGINT)
        return True

    def stop_all(self) -> None:
        with self._lock:
            running = [job for job in self._jobs if job.running]
        for job in running:
            job.process.send_signal(signal.SIGINT)

    def _read_stdout(self, job: Job) -> None:
        """The child's --json stdout: typed events, then one result or error object."""
        for line in job.process.stdout:
            try:
                envelope = parse_line(line)
            except EventParseError:
                self._read_outcome(job, line)
                continue
            if job.run_id is None and envelope.run_id:
                job.run_id = envelope.run_id
                job.known.set()
        job.process.wait()
        job.stderr_read.wait(timeout=10)  # the error, if any, is parsed before the job counts as done
        job.done.set()
        job.known.set()

    @staticmethod
    def _read_outcome(job: Job, line: str) -> None:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return
        if isinstance(data, dict) and isinstance(data.get("result"), dict):
            job.result = data["result"]
        elif isinstance(data, dict) and isinstance(data.get("error"), dict):
            job.error = data["error"]
            if job.run_id is None and job.error.get("run_id"):
                job.run_id = job.error["run_id"]

    def _read_stderr(self, job: Job) -> None:
        # Kept for what has no code (a crash before the CLI could report): the UI shows its last line.
        for line in job.process.stderr:
            job.stderr_tail.append(line)
        job.stderr_read.set()
