"""Which experiment trackers receive a training run: `--report-to`, and what `auto` turns on.

``auto`` turns on each tracker that is installed and configured: TensorBoard when tensorboardX is
installed (it writes into the run folder, so it needs nothing else); MLflow when
``MLFLOW_TRACKING_URI`` is set; W&B when logged in (``WANDB_API_KEY`` or a netrc entry) or when
``WANDB_MODE`` is offline or disabled. Naming a tracker turns it on without those checks, so a
tracker that then fails (no W&B key, an MLflow server that does not answer) warns and the run goes
on; naming one that is not installed is refused before the run starts.
"""

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass

from backpropagate.config import requested_trackers
from backpropagate.contract.errors import BackpropError
from backpropagate.sinks.base import Sink
from backpropagate.tracker_registry import TRACKERS


@dataclass(frozen=True)
class TrackerChoice:
    sinks: tuple[Sink, ...]
    summary: str  # "tensorboard on; mlflow off: MLFLOW_TRACKING_URI is not set; ..."


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_trackers(report_to: str) -> None:
    """Refuse a named tracker that is not installed, before anything runs."""
    for name in requested_trackers(report_to) or ():
        if not _installed(TRACKERS[name].module):
            raise BackpropError("DEP_TRACKER_NOT_INSTALLED", tracker=name, module=TRACKERS[name].module)


def choose_trackers(report_to: str, environ: Mapping[str, str] | None = None) -> TrackerChoice:
    """The tracker sinks for ``report_to``, and one line saying which are on and why the others are off."""
    environ = os.environ if environ is None else environ
    check_trackers(report_to)
    asked = requested_trackers(report_to)
    sinks, parts = [], []
    for name, tracker in TRACKERS.items():
        if asked is not None:
            why_off = None if name in asked else ("--report-to none" if not asked else "not in --report-to")
        elif not _installed(tracker.module):
            why_off = f"{tracker.module} is not installed (pip install 'backpropagate[{name}]')"
        else:
            why_off = tracker.sink_class().configured(environ)
        if why_off is None:
            sinks.append(tracker.sink_class()())
            parts.append(f"{name} on")
        else:
            parts.append(f"{name} off: {why_off}")
    return TrackerChoice(tuple(sinks), "; ".join(parts))
