"""MLflow: one run per training run, in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default backpropagate).

The tracking server is ``MLFLOW_TRACKING_URI`` (an http server, or ``sqlite:///PATH``). The run's
name and its ``backpropagate.run_id`` tag are the run id; a resumed run continues the MLflow run
that tag finds. Parameters are the resolved spec, flattened.
"""

import os
import time
from collections.abc import Mapping

from backpropagate.contract.events import Envelope
from backpropagate.sinks.base import RunEnd, RunStart
from backpropagate.sinks.tracking import StepCounter, artifact, final_status, flat, run_config

RUN_ID_TAG = "backpropagate.run_id"
_TERMINAL = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
# MLflow retries an unanswered request 7 times with growing waits (minutes in all): a tracker that
# does not answer should cost the run seconds. Set these variables yourself to choose otherwise.
_QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_PARAM_VALUE_LIMIT = 6000  # the longest parameter value MLflow stores


class MlflowSink:
    required = False
    name = "mlflow"

    @staticmethod
    def configured(environ: Mapping[str, str]) -> str | None:
        return None if environ.get("MLFLOW_TRACKING_URI") else "MLFLOW_TRACKING_URI is not set"

    def __init__(self) -> None:
        self.client = None
        self.run = None
        self.steps = StepCounter()

    def open(self, start: RunStart) -> None:
        for variable, value in _QUICK_FAILURE.items():
            os.environ.setdefault(variable, value)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "backpropagate")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        earlier = self.client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{start.run_id}'",
                                          max_results=1) if start.resume else []
        if earlier:
            self.run = earlier[0].info.run_id
            self.client.update_run(self.run, status="RUNNING")
        else:
            self.run = self.client.create_run(experiment_id, run_name=start.run_id,
                                              tags={RUN_ID_TAG: start.run_id}).info.run_id
        params = [Param(key, str(value)[:_PARAM_VALUE_LIMIT]) for key, value in flat(run_config(start)).items()]
        for at in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run, params=params[at: at + 100])

    def event(self, envelope: Envelope) -> None:
        from mlflow.entities import Metric

        step, values = self.steps.scalars(envelope)
        if values:
            stamp = int(envelope.ts * 1000)
            self.client.log_batch(self.run, metrics=[Metric(key, value, stamp, step) for key, value in values.items()])
        made = artifact(envelope)
        if made is not None:
            self.client.set_tag(self.run, f"artifact.{made.kind}.path", made.path)
            self.client.set_tag(self.run, f"artifact.{made.kind}.sha256", made.sha256)

    def close(self, end: RunEnd) -> None:
        status = final_status(end)
        self.client.set_tag(self.run, "backpropagate.status", status)
        self.client.set_terminated(self.run, _TERMINAL.get(status, "FAILED"), end_time=int(time.time() * 1000))

    def receipt(self) -> dict:
        return {"name": self.name, "run": self.run, "tracking_uri": self.client.tracking_uri}
