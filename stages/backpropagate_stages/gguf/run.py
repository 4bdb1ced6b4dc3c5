"""The gguf stage as a recipe: convert, fix the tokenizer flag, quantize, verify, publish.

    python -m backpropagate_stages.gguf --spec output/<run_id>/gguf.spec.json

writes ``gguf/model-<type>.gguf`` and ``gguf/verify.json`` into the run folder.
Everything is built in ``gguf.partial/`` and renamed at the end, so a failed
conversion or verification leaves nothing behind.
"""

import json
import logging
import shutil
from pathlib import Path

from backpropagate import events
from backpropagate.dataset import load_dataset
from backpropagate.errors import BackpropError
from backpropagate.runs.files import atomic_write_text, publish_folder
from backpropagate.runs.folder import RunFolder
from backpropagate.runs.manifest import describe, record_artifacts
from backpropagate.specs import GgufSpec
from backpropagate_stages.gguf import llama_tools, verify

log = logging.getLogger("backpropagate.gguf")


def run(spec: GgufSpec, emit) -> dict:
    folder = RunFolder(Path(spec.run_dir))
    merged = Path(spec.merged)
    llama_tools.tools_dir()  # fail before any work when the tools are missing
    llama_tools.llama_cpp()
    partial = folder.gguf.with_name("gguf.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        result = _build(spec, merged, partial, emit)
        publish_folder(partial, folder.gguf)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    model_file = folder.gguf / f"model-{spec.quantization}.gguf"
    artifact = describe("gguf", model_file, folder.root)
    emit(events.Artifact(kind="gguf", path=str(model_file), bytes=artifact["bytes"], sha256=artifact["sha256"]))
    record_artifacts(folder.manifest, spec.run_id, {"gguf"}, [artifact], _versions())
    return {"gguf": str(model_file), "quantization": spec.quantization, "verify": result,
            "chat_template": result.get("chat_template", False)}


def _build(spec: GgufSpec, merged: Path, partial: Path, emit) -> dict:
    step = lambda name: emit(events.Metric(key="export_step", value=name))  # noqa: E731
    outtype = spec.quantization if spec.quantization in llama_tools.CONVERTER_TYPES else "f16"
    converted = partial / f"converted-{outtype}.gguf"
    step(f"convert ({outtype})")
    llama_tools.convert(merged, converted, outtype, log)
    if llama_tools.read_field(converted, "tokenizer.ggml.add_space_prefix") is None and not _hf_adds_space(merged):
        fixed = partial / f"fixed-{outtype}.gguf"
        llama_tools.set_no_space_prefix(converted, fixed)
        converted.unlink()
        converted = fixed
    final = partial / f"model-{spec.quantization}.gguf"
    if spec.quantization in llama_tools.CONVERTER_TYPES:
        converted.rename(final)
    else:
        step(f"quantize ({spec.quantization})")
        llama_tools.quantize(converted, final, spec.quantization)
        converted.unlink()
    result: dict = {"verified": False,
                    "chat_template": llama_tools.read_field(final, "tokenizer.chat_template") is not None}
    if spec.verify:
        step("verify")
        result |= verify.compare(final, merged, _texts(spec, merged), spec.quantization)
        result["verified"] = True
        atomic_write_text(partial / "verify.json", json.dumps(result, indent=1) + "\n")
        emit(events.Metric(key="top1_agreement", value=result["top1_agreement"]))
        if not result["passed"]:
            raise BackpropError("RUNTIME_GGUF_VERIFY_FAILED", quantization=spec.quantization,
                                details="; ".join(result["problems"]))
    return result


def _texts(spec: GgufSpec, merged: Path) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    examples = list(load_dataset(spec.data, skip_invalid=True).examples) if spec.data else []
    return verify.verification_texts(tokenizer, examples)


def _hf_adds_space(merged: Path) -> bool:
    """Whether the model's own tokenizer puts a word-start marker before the first word."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    first = tokenizer.convert_ids_to_tokens(tokenizer("Hello", add_special_tokens=False)["input_ids"])[0]
    return first.startswith("▁")


def _versions() -> dict:
    from importlib.metadata import version

    return {"llama-cpp-python": version("llama-cpp-python")}
