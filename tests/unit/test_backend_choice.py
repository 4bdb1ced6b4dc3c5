"""Which training path a run takes: Unsloth only where it can run, never a silent fallback when asked for."""

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate_stages.train.model import choose_backend


def test_auto_uses_unsloth_on_a_gpu_for_a_supported_family_when_installed():
    assert choose_backend("auto", "cuda", "llama", unsloth_installed=True).name == "unsloth"


@pytest.mark.parametrize("device, family, installed, dora, reason", [
    ("cuda", "llama", False, False, "Unsloth is not installed"),
    ("cpu", "llama", True, False, "Unsloth needs a CUDA GPU"),
    ("cuda", "gpt2", True, False, "Unsloth does not support the gpt2 family"),
    ("cuda", "llama", True, True, "this project trains DoRA through PEFT only"),
])
def test_auto_falls_back_to_peft_and_says_why(device, family, installed, dora, reason):
    backend = choose_backend("auto", device, family, installed, dora)
    assert (backend.name, backend.reason) == ("peft", reason)


def test_on_refuses_to_fall_back():
    with pytest.raises(BackpropError) as caught:
        choose_backend("on", "cpu", "llama", unsloth_installed=True)
    assert caught.value.render() == (
        "[DEP_UNSLOTH_UNAVAILABLE]: --unsloth on was asked for, but Unsloth needs a CUDA GPU\n"
        "  fix: use --unsloth auto to fall back to PEFT when Unsloth cannot run"
    )


def test_off_always_uses_peft():
    assert choose_backend("off", "cuda", "llama", unsloth_installed=True).name == "peft"
