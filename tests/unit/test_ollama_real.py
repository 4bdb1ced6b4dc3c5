"""Registration against a REAL Ollama server, when one answers at OLLAMA_HOST; skipped, saying why, otherwise."""

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.ollama.client import OllamaClient

from tests.conftest import run_cli
from tests.unit.test_ollama_registration import make_run


@pytest.fixture
def real_ollama():
    client = OllamaClient(retries=0, timeout_s=5)
    try:
        version = client.version()
    except BackpropError as error:
        pytest.skip(f"no real Ollama answers at {client.url} ({error.message}); start one with `ollama serve` "
                    "to run this test")
    return client, version


def test_register_list_and_remove_on_a_real_ollama(real_ollama, tmp_path):
    """The tensor-less GGUF is not a loadable model: a real server may refuse to create it; what is checked is that
    the blob upload is accepted (digest and all) and that any refusal comes back as a coded error."""
    client, _version = real_ollama
    make_run(tmp_path)
    result = run_cli("ollama", "register", "3f2a", "--name", "backprop-contract-test", "--output", str(tmp_path))
    assert result.returncode in (0, 5), result.stderr
    if result.returncode == 5:
        assert "[RUNTIME_OLLAMA_CREATE_FAILED]" in result.stderr
        return
    assert any(m["name"] == "backprop-contract-test:latest" for m in client.tags())
    assert run_cli("ollama", "rm", "backprop-contract-test", "--output", str(tmp_path)).returncode == 0
