"""Reading what each tracker wrote, with the tracker's own reader: tensorboard's EventAccumulator,
MlflowClient, and the records of a W&B offline run file (its leveldb-style log of protobuf records,
the format `wandb sync` uploads; wandb 0.31 has no Python reader for it any more)."""

import json
import struct
from pathlib import Path


def tensorboard_run(logdir: Path) -> dict:
    """{"scalars": {tag: [(step, value)]}, "texts": {tag: [text]}} of a TensorBoard log folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in tags["scalars"]}
    texts = {tag.removesuffix("/text_summary"): [t.tensor_proto.string_val[0].decode() for t in accumulator.Tensors(tag)]
             for tag in tags["tensors"]}
    return {"scalars": scalars, "texts": texts}


def mlflow_run(tracking_uri: str, run_name: str) -> dict:
    """The MLflow run named ``run_name`` in the backpropagate experiment: info, params, tags, metric histories."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("backpropagate")
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{run_name}'")
    assert len(runs) == 1, runs
    run = runs[0]
    history = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
               for key in run.data.metrics}
    return {"status": run.info.status, "name": run.info.run_name, "params": run.data.params,
            "tags": run.data.tags, "metrics": history}


_BLOCK = 32768  # the log's block size; a record never straddles a block header


def _wandb_records(path: Path):
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    at, pending = 7, b""
    while at + 7 <= len(data):
        left = _BLOCK - at % _BLOCK
        if left < 7:  # the block's tail is padding
            at += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[at: at + 7])
        if kind == 0 and length == 0:
            at += left
            continue
        chunk = data[at + 7: at + 7 + length]
        at += 7 + length
        if kind == 1:  # a whole record
            yield chunk
        elif kind == 2:  # first piece
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:  # last piece
            yield pending + chunk
            pending = b""


def wandb_run(run_dir: Path) -> dict:
    """The W&B offline run under ``run_dir/wandb``: its id and name, config, history rows, summary, exit code."""
    from wandb.proto import wandb_internal_pb2

    files = sorted(Path(run_dir, "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    found = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for data in _wandb_records(files[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found |= {"id": record.run.run_id, "name": record.run.display_name, "project": record.run.project}
            found["config"] |= {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind == "config":
            found["config"] |= {item.key: json.loads(item.value_json) for item in record.config.update}
        elif kind == "history":
            found["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                     for item in record.history.item})
        elif kind == "summary":
            found["summary"] |= {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.summary.update}
        elif kind == "exit":
            found["exit_code"] = record.exit.exit_code
    return found
