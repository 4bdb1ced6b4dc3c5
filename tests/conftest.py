"""Test tiers.

- ``tests/unit``: the host package alone: no torch, no model, seconds in all.
- ``tests/local``: stages run in-process (the ``local`` runtime) on a tiny model that
  ``scripts/make_tiny_model.py`` builds offline once per session. They need the
  ``local`` extra; without it they are skipped with the reason shown, unless
  REQUIRE_LOCAL_TIER=1 (set by scripts/test.sh), which turns that skip into a failure.
- ``tests/docker``: the stage images on a real Docker engine (scripts/test.sh sets one up; without
  one the tier is skipped with the reason, unless REQUIRE_DOCKER_TIER=1).

Outside tests/docker, runs use the local runtime: ``auto`` would pick Docker wherever an engine
answers, and those tiers test the stages themselves.

Nothing here mocks torch, transformers or PEFT. The only stand-ins are for what
cannot run on these machines (a GPU, a model hub), and they are named as such.
"""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STACK = ("torch", "transformers", "peft")
# Files that need more than the ML stack: the pinned llama.cpp (bash scripts/setup_llama_cpp.sh).
EXTRA = {"test_gguf.py": ("llama_cpp",), "test_quality.py": ("llama_cpp",),
         "test_real_model.py": ("llama_cpp", "gguf"), "test_real_campaign.py": ("llama_cpp", "gguf"),
         "test_ray_runtime.py": ("ray",)}


# The slowest files, and why each needs its time. Under `pytest -n auto` (scripts/test.sh) they start first,
# so the workers end together instead of one waiting on a long file started last.
SLOW = {
    "tests/docker": "builds nothing, but every stage starts a container and the tier shares one engine: one worker",
    "tests/local/test_families.py": "trains and exports a tiny model around each family's real tokenizer",
    "tests/local/test_real_model.py": "fine-tunes the real SmolLM2-135M and asks its weights and its GGUF",
    "tests/local/test_real_campaign.py": "a four-run SmolLM2-135M campaign, exported twice and asked 32 facts",
    "tests/local/test_ray_runtime.py": "a real Ray cluster: two-worker runs, a worker killed and restarted, Ctrl-C",
    "tests/local/test_multi_run.py": "campaigns of several runs, killed and resumed",
    "tests/local/test_gguf.py": "real llama.cpp conversions and quantizations",
    "tests/local/test_gpu_check.py": "every section of the GPU check, dry-run on the CPU",
    "tests/local/test_ui_browser.py": "a real headless Chromium through a whole run",
    "tests/local/test_train.py": "the train stage's contract on the tiny model",
}


def _unit(nodeid: str) -> str:
    """What one xdist worker runs whole: a file (its module fixtures are built once), or the docker tier
    (its tests count the engine's containers, so they never run beside each other)."""
    path = nodeid.split("::", 1)[0]
    return "tests/docker" if path.startswith("tests/docker/") else path


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which a plain `pytest` may run without
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below: the slowest units first
    return ByUnit(config, log)


def pytest_collection_modifyitems(config, items):
    # The slow files in their order, then the rest of the local tier (stages: seconds each), then the docker
    # and unit tiers' many quick files, which fill in while the last long file ends.
    slow = list(SLOW)

    def start(item) -> tuple[int, int]:
        unit = _unit(item.nodeid)
        return (slow.index(unit), 0) if unit in slow else (len(slow), 0 if unit.startswith("tests/local/") else 1)

    items.sort(key=start)  # stable: each file keeps its own order
    for item in items:
        if "tests/local" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.local)
            needed = STACK + EXTRA.get(item.path.name, ())
            missing = [name for name in needed if importlib.util.find_spec(name) is None]
            if missing:
                if os.environ.get("REQUIRE_LOCAL_TIER") == "1":
                    raise pytest.UsageError(f"local tier required but {', '.join(missing)} missing")
                item.add_marker(pytest.mark.skip(reason=f"local tier needs {', '.join(missing)} "
                                                        "(bash scripts/test.sh sets it up)"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real Llama-architecture model with a SentencePiece tokenizer and a ChatML template."""
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama",
                    "--out", str(out)], check=True, capture_output=True, text=True)
    return out


def ctrl_c_as_in_a_terminal() -> None:
    """preexec_fn for a CLI a test will Ctrl-C: SIGINT's default action, as a terminal's foreground job has it.

    A child inherits an ignored SIGINT (a suite started in the background by a non-interactive shell has
    it so), and Python then never raises KeyboardInterrupt: the test would send a signal nobody hears.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the real `backprop` entry point in a child process, as a user would.

    ``timeout`` (seconds) turns a hang into a failed test (subprocess.TimeoutExpired) instead of a stuck suite."""
    return subprocess.run([sys.executable, "-m", "backpropagate", *args], capture_output=True, text=True,
                          env=cli_env(env), cwd=cwd, timeout=timeout)


def cli_env(env: dict | None = None) -> dict:
    """The environment a child CLI gets: no BACKPROPAGATE_* of the developer's, the local runtime, then ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")}
    full_env["BACKPROPAGATE_RUNTIME"] = "local"
    full_env.update(env or {})
    return full_env


@pytest.fixture(autouse=True)
def _clean_settings_environment(monkeypatch, request):
    """Tests start from the defaults, whatever BACKPROPAGATE_* the developer has exported."""
    for name in list(os.environ):
        if name.startswith("BACKPROPAGATE_"):
            monkeypatch.delenv(name)
    if "tests/docker" not in str(request.node.path).replace(os.sep, "/"):
        monkeypatch.setenv("BACKPROPAGATE_RUNTIME", "local")


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """``family_model("qwen3" | "llama3")``: a tiny model around that family's real tokenizer, built once."""
    built: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp("families") / family
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--tokenizer", family,
                            "--out", str(out)], check=True, capture_output=True, text=True)
            built[family] = out
        return built[family]

    return build
