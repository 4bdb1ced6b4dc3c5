"""Which experiment trackers receive a training run: `--report-to`, and what `auto` turns on.

``auto`` turns on each tracker that is installed and configured: TensorBoard when tensorboardX is
installed (it writes into the run folder, so it needs nothing else); MLflow when
``MLFLOW_TRACKING_URI`` is set; W&B when logged in (``WANDB_API_KEY`` or a netrc entry) or when
``WANDB_MODE`` is offline or disabled. Naming a tracker turns it on without those checks, so a
tracker that then fails (no W&B key, an MLflow server that does not answer) warns and the run goes
on; naming one that is not installed is refused before the run starts.
"""

import importlib.util
import netrc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from backpropagate.config import requested_trackers
from backpropagate.contract.errors import BackpropError
from backpropagate.sinks.base import Sink


@dataclass(frozen=True)
class Tracker:
    name: str
    module: str  # the library it needs, looked for without importing it
    configured: Callable[[Mapping[str, str]], str | None]  # None when auto may turn it on, else why not
    sink: Callable[[], Sink]


def _always(environ: Mapping[str, str]) -> str | None:
    return None


def _mlflow_configured(environ: Mapping[str, str]) -> str | None:
    return None if environ.get("MLFLOW_TRACKING_URI") else "MLFLOW_TRACKING_URI is not set"


def _wandb_configured(environ: Mapping[str, str]) -> str | None:
    if environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return None
    if environ.get("WANDB_API_KEY"):
        return None
    host = urlparse(environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        if netrc.netrc(environ.get("NETRC") or None).authenticators(host):
            return None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "not logged in (run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline)"


def _tensorboard_sink() -> Sink:
    from backpropagate.sinks.tensorboard import TensorBoardSink
    return TensorBoardSink()


def _mlflow_sink() -> Sink:
    from backpropagate.sinks.mlflow import MlflowSink
    return MlflowSink()


def _wandb_sink() -> Sink:
    from backpropagate.sinks.wandb import WandbSink
    return WandbSink()


TRACKERS: dict[str, Tracker] = {
    "tensorboard": Tracker("tensorboard", "tensorboardX", _always, _tensorboard_sink),
    "mlflow": Tracker("mlflow", "mlflow", _mlflow_configured, _mlflow_sink),
    "wandb": Tracker("wandb", "wandb", _wandb_configured, _wandb_sink),
}


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
            why_off = tracker.configured(environ)
        if why_off is None:
            sinks.append(tracker.sink())
            parts.append(f"{name} on")
        else:
            parts.append(f"{name} off: {why_off}")
    return TrackerChoice(tuple(sinks), "; ".join(parts))
