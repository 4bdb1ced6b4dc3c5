"""`--runtime ray` on the host: asked for by name only, refused with the install line where Ray is missing, and a
worker that Ray could not bring back is the run's coded error. The cluster itself is tests/local/test_ray_runtime.py."""

import importlib.util
import sys

import pytest
from backpropagate.config import command_settings, load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.runtimes import choose_runtime
from backpropagate.runtimes.local import LocalRuntime
from backpropagate.runtimes.ray import RayRuntime, _Follower

from tests.unit.test_error_paths import NO_ENGINE

ray_installed = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs backpropagate[ray]")


def test_runtime_ray_where_ray_is_not_installed_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # its import fails, as where the extra is not installed
    runtime = choose_runtime("ray", load_settings({"BACKPROPAGATE_RUNTIME": "ray"})).runtime
    with pytest.raises(BackpropError) as caught:
        runtime.check()
    error = caught.value
    assert (error.code, error.exit_code) == ("DEP_RAY_MISSING", 4)
    assert error.message == f"the ray runtime needs ray, which is not importable: not installed for {sys.executable}"
    assert error.fix == ("pip install 'backpropagate[ray]' (ray[train]==2.60.0, with the ML stack of "
                         "'backpropagate[local]'), here and on every node of the cluster")


def test_the_ray_settings_reach_the_runtime():
    runtime = choose_runtime("ray", load_settings({"BACKPROPAGATE_RAY_ADDRESS": "10.0.0.5:6379",
                                                   "BACKPROPAGATE_RAY_MAX_FAILURES": "3",
                                                   "BACKPROPAGATE_WORKERS": "4"})).runtime
    assert isinstance(runtime, RayRuntime)
    assert (runtime.address, runtime.max_failures, runtime.workers) == ("10.0.0.5:6379", 3, 4)
    resumed = choose_runtime("ray", command_settings(runtime="ray", workers=2, ray_address="head:6379",
                                                     ray_max_failures=0)).runtime  # `backprop resume`'s options
    assert (resumed.address, resumed.max_failures, resumed.workers) == ("head:6379", 0, 2)


@ray_installed
def test_auto_never_picks_ray_even_where_it_is_installed(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    with pytest.raises(BackpropError) as caught:
        choose_runtime("auto", local=LocalRuntime(stack=("no_such_package_for_backpropagate",)))
    assert caught.value.code == "DEP_NO_RUNTIME"


@ray_installed
def test_workers_ray_could_not_bring_back_end_the_run_with_runtime_worker_lost(tmp_path):
    from ray.train import WorkerGroupError

    follower = _Follower("3f2a", "train", 2, 1, tmp_path / "log.txt", on_event=lambda envelope: None)
    used_up = WorkerGroupError("rank 1 died", {1: RuntimeError("rank 1's stage ended with exit code -9: no output")})
    with pytest.raises(BackpropError) as caught:
        follower.exit(used_up, max_failures=1)
    error = caught.value
    assert (error.code, error.exit_code) == ("RUNTIME_WORKER_LOST", 5)
    assert error.message == ("a train worker was lost and no restart is left (1 allowed under --runtime ray): "
                             "rank 1: rank 1's stage ended with exit code -9: no output")
    assert error.fix == (f"`backprop resume 3f2a` goes on from the newest checkpoint once every worker can run (see "
                         f"{tmp_path / 'log.txt'}; a kill for lack of memory shows in `dmesg`); under --runtime ray, "
                         "--ray-max-failures allows more restarts")
