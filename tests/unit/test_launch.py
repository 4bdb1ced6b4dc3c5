"""The stage command: the train stage under torchrun for --workers N, every other stage alone."""


import pytest
from backpropagate.config import load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.runtimes import choose_runtime
from backpropagate.runtimes.launch import SHUTDOWN_TIMEOUT_S, stage_command, stage_environment


def test_train_on_two_workers_runs_under_torchrun_standalone():
    assert stage_command("train", 2, "py") == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}", "-m", "backpropagate_stages.train"]


@pytest.mark.parametrize("stage, workers", [("train", 1), ("merge", 2), ("gguf", 4), ("eval", 2)])
def test_one_worker_or_a_stage_that_is_not_data_parallel_runs_alone(stage, workers):
    assert stage_command(stage, workers, "py") == ["py", "-m", f"backpropagate_stages.{stage}"]


def test_the_workers_setting_reaches_the_runtime_and_refuses_zero():
    assert load_settings({"BACKPROPAGATE_WORKERS": "3"}).workers == 3
    assert choose_runtime("local", load_settings({"BACKPROPAGATE_WORKERS": "3"})).runtime.workers == 3
    with pytest.raises(BackpropError) as refused:
        load_settings({}, overrides={"workers": 0}, names={"workers": "--workers"})
    assert refused.value.code == "CONFIG_VALUE_INVALID"
    assert "--workers" in refused.value.message


def test_a_stage_started_here_never_inherits_a_process_group_from_the_shell():
    inherited = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500",
                 "PATH": "/usr/bin", "HF_HOME": "/cache"}
    assert stage_environment(inherited) == {"PATH": "/usr/bin", "HF_HOME": "/cache"}
