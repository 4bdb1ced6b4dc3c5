"""Weights & Biases: one W&B run per training run, whose id and name are the run id.

Its files go under the run folder (``wandb/``); ``WANDB_PROJECT`` picks the project (default
backpropagate), ``WANDB_MODE=offline`` keeps it on this machine. W&B prints nothing and leaves the
terminal alone: stdout may be the run's JSON events.
"""

import netrc
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from backpropagate.contract.events import Envelope
from backpropagate.sinks.base import RunEnd, RunStart
from backpropagate.sinks.tracking import StepCounter, artifact, final_status, run_config

_EXIT_CODES = {"finished": 0, "failed": 1, "interrupted": 130}


class WandbSink:
    required = False
    name = "wandb"

    @staticmethod
    def configured(environ: Mapping[str, str]) -> str | None:
        """Logged in (WANDB_API_KEY or a netrc entry), or offline: else why `auto` leaves it off."""
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

    def __init__(self) -> None:
        self.run = None
        self.mode = os.environ.get("WANDB_MODE", "online").lower()
        self.steps = StepCounter()

    def open(self, start: RunStart) -> None:
        import wandb

        # The mode is read afresh for each run: wandb keeps the first run's in its process-wide state.
        mode = {"dryrun": "offline"}.get(self.mode, self.mode)
        self.run = wandb.init(id=start.run_id, name=start.run_id, project=os.environ.get("WANDB_PROJECT",
                                                                                            "backpropagate"),
                              dir=str(start.run_dir), config=run_config(start), resume="allow", mode=mode,
                              settings=wandb.Settings(silent=True, console="off"))

    def event(self, envelope: Envelope) -> None:
        step, values = self.steps.scalars(envelope)
        if values:
            self.run.log(values, step=step)
        made = artifact(envelope)
        if made is not None:
            self.run.summary[f"artifact/{made.kind}"] = {"path": made.path, "sha256": made.sha256,
                                                         "bytes": made.bytes}

    def close(self, end: RunEnd) -> None:
        status = final_status(end)
        self.run.summary["status"] = status
        self.run.finish(exit_code=_EXIT_CODES.get(status, 1))

    def receipt(self) -> dict:
        return {"name": self.name, "run": self.run.id, "dir": str(self.run.dir),
                "mode": self.mode}
