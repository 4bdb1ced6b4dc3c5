"""Export formats as data: each format's steps and options, and the same refusals from the CLI and the API."""

import pytest
from backpropagate import Trainer
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.stages import STAGES
from backpropagate.runs.exports import EXPORT_FORMATS

from tests.conftest import run_cli


def test_every_format_runs_stages_the_registry_knows():
    assert {name: f.steps for name, f in EXPORT_FORMATS.items()} == {
        "merged": ("merge",), "gguf": ("merge", "gguf"), "lora-gguf": ("gguf",)}
    assert all(step in STAGES for f in EXPORT_FORMATS.values() for step in f.steps)


def test_quantization_with_lora_gguf_is_refused_not_forced_to_f16(tmp_path):
    result = run_cli("export", "3f2a", "--format", "lora-gguf", "--quantization", "q4_k_m", "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("[CONFIG_OPTION_NOT_FOR_FORMAT]: --quantization does not apply to --format lora-gguf\n"
                             "  fix: drop --quantization; --format lora-gguf takes --no-verify\n")
    assert list(tmp_path.iterdir()) == []  # refused before anything was planned


def test_dtype_with_lora_gguf_and_quantization_with_merged_are_refused():
    lora = run_cli("export", "3f2a", "--format", "lora-gguf", "--dtype", "bfloat16")
    assert lora.returncode == 2 and "[CONFIG_OPTION_NOT_FOR_FORMAT]: --dtype does not apply" in lora.stderr
    merged = run_cli("export", "3f2a", "--format", "merged", "--quantization", "q8_0")
    assert merged.returncode == 2
    assert "fix: drop --quantization; --format merged takes --dtype" in merged.stderr


def test_ollama_options_need_the_gguf_format():
    for flag in ("--ollama", "--ollama-container"):
        result = run_cli("export", "3f2a", "--format", "merged", flag)
        assert result.returncode == 2
        assert result.stderr.startswith("[CONFIG_OLLAMA_NEEDS_GGUF]: --ollama registers a GGUF with Ollama, "
                                        "but --format is merged\n  fix: add --format gguf, or register an existing")


def test_an_unknown_format_is_a_coded_error_listing_the_formats():
    result = run_cli("export", "3f2a", "--format", "onnx")
    assert result.returncode == 2
    assert result.stderr == ("[CONFIG_VALUE_INVALID]: --format='onnx' is not valid: not an export format\n"
                             "  fix: use one of merged, gguf, lora-gguf\n")


def test_the_api_refuses_what_the_cli_refuses_with_the_same_codes():
    trainer = Trainer("m", progress=False)
    with pytest.raises(BackpropError) as caught:
        trainer.export("lora-gguf", quantization="q8_0", run="3f2a")
    assert caught.value.render() == ("[CONFIG_OPTION_NOT_FOR_FORMAT]: --quantization does not apply to --format "
                                     "lora-gguf\n  fix: drop --quantization; --format lora-gguf takes --no-verify")
    with pytest.raises(BackpropError) as caught:
        trainer.export("onnx")
    assert caught.value.code == "CONFIG_VALUE_INVALID" and caught.value.fix == "use one of merged, gguf, lora-gguf"
    with pytest.raises(BackpropError) as caught:
        trainer.export("gguf", quantization="q3")
    assert caught.value.message == "--quantization='q3' is not valid: not a GGUF type this export makes"


def test_the_api_says_what_to_do_when_there_is_nothing_to_export_or_train():
    trainer = Trainer("m", progress=False)
    with pytest.raises(BackpropError) as caught:
        trainer.export("merged")
    assert caught.value.render() == ("[CONFIG_VALUE_INVALID]: run=None is not valid: this Trainer has not trained\n"
                                     "  fix: use call train() first, or pass run=RUN (a run id or folder)")
    with pytest.raises(BackpropError) as caught:
        trainer.train(steps=5)
    assert caught.value.message == "data=None is not valid: no dataset given"
    assert caught.value.fix == "use a JSONL or JSON file (or resume=RUN to continue a run)"
