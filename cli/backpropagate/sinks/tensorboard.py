"""TensorBoard: event files in the run folder's ``tensorboard/``, written with tensorboardX.

``tensorboard --logdir ./output`` then lists each run under its run id.
"""

import json
from collections.abc import Mapping

from backpropagate.contract.events import Envelope
from backpropagate.sinks.base import RunEnd, RunStart
from backpropagate.sinks.tracking import StepCounter, artifact, final_status, run_config


class TensorBoardSink:
    required = False
    name = "tensorboard"

    @staticmethod
    def configured(environ: Mapping[str, str]) -> str | None:
        """None when `auto` may turn it on, else why not: it writes into the run folder, so never."""
        return None

    def __init__(self) -> None:
        self.writer = None
        self.logdir = None
        self.steps = StepCounter()

    def open(self, start: RunStart) -> None:
        from tensorboardX import SummaryWriter

        self.logdir = start.run_dir / "tensorboard"
        self.writer = SummaryWriter(logdir=str(self.logdir))
        self.writer.add_text("run_id", start.run_id, 0)
        self.writer.add_text("config", "```json\n" + json.dumps(run_config(start), indent=1) + "\n```", 0)

    def event(self, envelope: Envelope) -> None:
        step, values = self.steps.scalars(envelope)
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        made = artifact(envelope)
        if made is not None:
            self.writer.add_text(f"artifact/{made.kind}", f"{made.path} sha256 {made.sha256} ({made.bytes} bytes)",
                                 step)
        if values or made is not None:
            self.writer.flush()  # a killed run still leaves what it logged

    def close(self, end: RunEnd) -> None:
        self.writer.add_text("status", final_status(end), self.steps.step)
        self.writer.close()

    def receipt(self) -> dict:
        return {"name": self.name, "logdir": str(self.logdir)}
