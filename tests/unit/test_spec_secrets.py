"""A spec file is redacted as the console is; the values it hides reach only the stage that reads them."""

import json
import os
import stat

import pytest

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.specs import read_run_spec, secrets_file, spec_data, write_spec_data

TOKEN = "hf_" + "Ab1" * 10


def test_a_spec_holding_a_token_is_written_masked_and_its_real_value_only_to_a_file_of_its_owner(tmp_path):
    spec = tmp_path / "spec.json"
    write_spec_data({"model": f"org/m-{TOKEN}", "lora": {"targets": ["q_proj", f"x-{TOKEN}"]}, "steps": 3}, spec)
    assert TOKEN not in spec.read_text()
    assert json.loads(spec.read_text()) == {"model": "org/m-***", "lora": {"targets": ["q_proj", "x-***"]},
                                            "steps": 3}
    secrets = secrets_file(spec)
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    assert spec_data(spec) == {"model": f"org/m-{TOKEN}", "lora": {"targets": ["q_proj", f"x-{TOKEN}"]}, "steps": 3}
    write_spec_data({"model": "org/m", "steps": 3}, spec)  # rewritten without a secret: the old one goes
    assert not secrets.exists()


def test_a_run_whose_secret_was_never_written_cannot_be_run_again_from_its_spec(tmp_path):
    from backpropagate.contract.schema import to_dict
    from backpropagate.contract.specs import DataSpec, TrainSpec
    from backpropagate.contract.settings import LoraSettings, TrainingSettings

    run_dir = tmp_path / f"out-{TOKEN}" / "run1"
    spec = TrainSpec(run_id="run1", run_dir=str(run_dir), model=f"org/m-{TOKEN}",
                     data=DataSpec(path=str(run_dir / "data.jsonl")), training=TrainingSettings(), lora=LoraSettings())
    path = tmp_path / "spec.json"
    write_spec_data(to_dict(spec), path)
    secrets_file(path).unlink()  # as the stage leaves it once it has read it
    with pytest.raises(BackpropError) as caught:
        read_run_spec(path, run_dir, "run1")
    assert caught.value.code == "STATE_SPEC_REDACTED"
    assert caught.value.message == ("run run1 was started with a secret in model, which its spec.json keeps masked: "
                                    "the real value was never written to disk")
    assert caught.value.fix == ("start a new run with `backprop train`, passing the secret again (a token through "
                                "HF_TOKEN, not inside a flag's value)")


def test_paths_under_a_masked_run_folder_are_found_again_under_the_real_one(tmp_path):
    """And a dataset's `source`, redacted for people on purpose, is no secret lost: the run goes on."""
    from backpropagate.contract.schema import to_dict
    from backpropagate.contract.specs import DataSpec, TrainSpec
    from backpropagate.contract.settings import LoraSettings, TrainingSettings

    run_dir = tmp_path / f"out-{TOKEN}" / "run1"
    spec = TrainSpec(run_id="run1", run_dir=str(run_dir), model="org/m",
                     data=DataSpec(path=str(run_dir / "data.jsonl"), source="/data/token=***/rows.jsonl"),
                     training=TrainingSettings(), lora=LoraSettings())
    path = tmp_path / "spec.json"
    write_spec_data(to_dict(spec), path)
    secrets_file(path).unlink()
    again = read_run_spec(path, run_dir, "run1")
    assert (again.run_dir, again.data.path) == (str(run_dir), str(run_dir / "data.jsonl"))


def test_the_docker_runtime_mounts_the_real_paths_a_masked_spec_names(tmp_path):
    from backpropagate.runtimes.mounts import plan_mounts

    base = tmp_path / f"models-{TOKEN}" / "base"
    base.mkdir(parents=True)
    run_dir = tmp_path / "runs" / "run1"
    run_dir.mkdir(parents=True)
    spec = run_dir / "spec.json"
    write_spec_data({"run_dir": str(run_dir), "model": str(base)}, spec)
    assert TOKEN not in spec.read_text()
    assert [mount.host for mount in plan_mounts(spec, str(run_dir))] == [str(base), str(run_dir)]
