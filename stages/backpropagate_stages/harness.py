"""What every stage program shares: read the spec, keep stdout for events, end with an exit code.

A stage's ``__main__`` calls ``stage_main(name, run)``. The harness:

- parses ``--spec PATH`` and reads the spec strictly, as the type the stage registry names;
- keeps the real stdout for events only; everything libraries print (fd 1 and 2,
  including C extensions) goes through a pipe, is redacted, and lands in log.txt;
- emits ``started``, then always ``finished`` (with ``run``'s typed result as its outputs) or
  ``error`` + ``finished``;
- turns a BackpropError into its exit code, Ctrl-C or SIGTERM into 130 (a training
  loop first finishes its step, see StopRequest), and any other exception into ``RUNTIME_STAGE_FAILED`` with the traceback kept in log.txt.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from backpropagate.contract import events
from backpropagate.contract.errors import EXIT_INTERRUPTED, BackpropError
from backpropagate.contract.event_log import EventLog
from backpropagate.contract.files import is_disk_full
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.redact import redact
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import read_spec, secrets_file
from backpropagate.contract.stages import STAGES

log = logging.getLogger("backpropagate")


class StopRequest:
    """Ctrl-C or SIGTERM. While a training loop listens, the first one asks it to stop after
    the current step (so no step is left half-applied); otherwise, or the second time, stop now."""

    def __init__(self) -> None:
        self.listening = False
        self.requested = False

    def handle(self, signum, frame) -> None:
        if self.listening and not self.requested:
            self.requested = True
            log.warning("signal %s: stopping after the current step (again to stop at once)", signum)
            return
        raise KeyboardInterrupt


STOP = StopRequest()


class Emitter:
    """Writes each event to the event stream (stdout) and appends it to events.jsonl."""

    def __init__(self, run_id: str, stage: str, stream: TextIO, events_file: Path | None) -> None:
        self.run_id, self.stage, self.stream = run_id, stage, stream
        self.log = EventLog(events_file) if events_file else None

    def __call__(self, event: Any) -> None:
        envelope = events.Envelope(run_id=self.run_id, stage=self.stage, event=event)
        self.stream.write(envelope.to_line() + "\n")
        self.stream.flush()
        if self.log:
            # On a full disk this raises; the stream still reaches the host, which reports the error.
            self.log.append(envelope)

    def close(self) -> None:
        if self.log:
            self.log.close()


def stage_main(name: str, run: Callable[[Any, Emitter], Any], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m backpropagate_stages.{name}")
    parser.add_argument("--spec", required=True, type=Path, help="path of the spec.json to run")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, STOP.handle)
    signal.signal(signal.SIGTERM, STOP.handle)
    # A child inherits its parent's blocked signals: a Ray worker's thread has them blocked, and its stage would
    # never hear a stop request.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    try:
        spec = read_spec(STAGES[name].spec, args.spec)
    except BackpropError as error:
        emit = Emitter("", name, sys.stdout, None)
        emit(events.Error(code=error.code, message=error.message, fix=error.fix))
        emit(events.Finished(status="failed"))
        return error.exit_code
    finally:
        secrets_file(args.spec).unlink(missing_ok=True)  # read once, by this stage only

    folder = RunFolder(Path(spec.run_dir))
    folder.root.mkdir(parents=True, exist_ok=True)
    with _logs_to_file(folder.log) as event_stream:
        _configure_logging(spec.log_level, spec.run_id)
        # Under torchrun every rank runs this; rank 0 alone speaks, so the run has one event stream.
        emit = Emitter(spec.run_id, name, event_stream, folder.events) if os.environ.get("RANK", "0") == "0" \
            else Emitter(spec.run_id, name, open(os.devnull, "w"), None)
        try:
            return _run(name, spec, run, emit, folder)
        finally:
            emit.close()


def _run(name: str, spec: Any, run: Callable, emit: Emitter, folder: RunFolder) -> int:
    emit(events.Started(message=f"run_started run_id={spec.run_id} stage={name}"))
    log.info("run_started run_id=%s stage=%s", spec.run_id, name)
    try:
        result = run(spec, emit)
        if not isinstance(result, STAGES[name].result):
            raise TypeError(f"the {name} stage returned {type(result).__name__}, not {STAGES[name].result.__name__}")
    except BackpropError as error:
        log.error("%s", error.render())
        return _fail(emit, error.code, error.message, error.fix, error.exit_code, "failed")
    except KeyboardInterrupt:
        error = BackpropError("RUNTIME_INTERRUPTED", run_id=spec.run_id)
        return _fail(emit, error.code, error.message, error.fix, EXIT_INTERRUPTED, "interrupted")
    except Exception as exc:  # the last line of defence: report, never a raw traceback on the console
        log.error("unexpected failure\n%s", traceback.format_exc())
        if is_disk_full(exc):
            then = f"`backprop resume {spec.run_id}`" if name == "train" else "run the export again"
            error = BackpropError("RUNTIME_DISK_FULL", path=getattr(exc, "filename", None) or folder.root,
                                  output=folder.root.parent, then=then)
            return _fail(emit, error.code, error.message, error.fix, error.exit_code, "failed")
        error = BackpropError("RUNTIME_STAGE_FAILED", stage=name, reason=f"{type(exc).__name__}: {exc}",
                              log=folder.log)
        return _fail(emit, error.code, error.message, error.fix, error.exit_code, "failed")
    emit(events.Finished(status="completed", outputs=to_dict(result)))
    log.info("run_finished run_id=%s status=completed", spec.run_id)
    return 0


def _fail(emit: Emitter, code: str, message: str, fix: str, exit_code: int, status: str) -> int:
    for event in (events.Error(code=code, message=message, fix=fix), events.Finished(status=status)):
        try:
            emit(event)  # every event is redacted as it is serialized
        except OSError:
            pass  # the host has it from the stream; only events.jsonl, on a full disk, missed it
    return exit_code


@contextmanager
def _logs_to_file(log_path: Path):
    """Point fd 1 and 2 at a pipe whose lines are redacted into log.txt; yield the real stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    event_stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, log_path), daemon=True)
    pump.start()
    try:
        yield event_stream
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Restoring fd 1 and 2 closes the pipe's last write end, so the pump sees EOF.
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        pump.join(timeout=10)
        event_stream.close()


def _pump(read_end: int, log_path: Path) -> None:
    """Drain the pipe to its end, whatever happens to log.txt: a pipe left full would block the stage."""
    with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as pipe:
        try:
            log_file = open(log_path, "a", encoding="utf-8")
        except OSError:
            log_file = None
        for line in pipe:
            if log_file is None:
                continue
            try:
                log_file.write(redact(line))
                log_file.flush()
            except OSError:  # a full disk: the rest of the log is lost, the run's own error says why
                _close_quietly(log_file)
                log_file = None
        if log_file is not None:
            _close_quietly(log_file)


def _close_quietly(file) -> None:
    try:
        file.close()
    except OSError:  # its last buffered line could not be written either: the disk is full
        pass


def _configure_logging(level: str, run_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s run_id={run_id} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
