"""The gguf stage as a recipe: convert, correct the tokenizer metadata, quantize, verify, publish.

    python -m backpropagate_stages.gguf --spec output/<run_id>/gguf.spec.json

writes ``gguf/model-<type>.gguf`` (or, for kind lora, ``gguf/adapter-f16.gguf``) and
its entry in ``gguf/verify.json`` into the run folder. Everything is built in
``gguf.partial/`` and only the finished file is moved into ``gguf/``, so a failed
conversion or verification leaves nothing behind and earlier exports stay.
"""

import json
import logging
import os
import re
import shutil
from pathlib import Path

from backpropagate.contract import events, layout
from backpropagate.contract.dataset import load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text, fsync_dir
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.manifest import describe, record_artifacts
from backpropagate.contract.specs import GgufResult, GgufSpec

from backpropagate_stages.base_model import base_folder
from backpropagate_stages.gguf import answers, llama_tools, tokenizer_fix, verify
from backpropagate_stages.train.faults import Faults

log = logging.getLogger("backpropagate.gguf")


def run(spec: GgufSpec, emit) -> GgufResult:
    folder = RunFolder(Path(spec.run_dir))
    merged = Path(spec.merged)
    llama_tools.tools_dir()  # fail before any work when the tools are missing
    llama_tools.llama_cpp()
    partial = layout.partial(folder.gguf)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        if spec.kind == "lora":
            name, result = _build_lora(spec, partial, emit)
        else:
            name, result = _build(spec, merged, partial, emit)
        _publish(partial, folder.gguf, name, result)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    gguf_file = folder.gguf / name
    kind = "lora-gguf" if spec.kind == "lora" else "gguf"
    artifact = describe(kind, gguf_file, folder.root)
    if result.get("verified"):
        artifact["verify"] = {key: result[key] for key in ("passed", "top1_agreement", "perplexity_gguf",
                                                           "perplexity_merged", "tokenizer_mismatches")}
    emit(events.Artifact(kind=kind, path=str(gguf_file), bytes=artifact["bytes"], sha256=artifact["sha256"]))
    record_artifacts(folder.manifest, spec.run_id, {kind}, [artifact], _versions())
    quality = {}
    if spec.prompts and spec.kind == "model":
        report = answers.answer_prompts(gguf_file, spec.prompts, spec.max_new_tokens, folder.quality)
        quality = report.summary()
        if "hits" in quality:
            emit(events.Metric(key="eval_hits", value=f"{gguf_file.name} {quality['hits'][f'gguf:{gguf_file.name}']} "
                                                      f"of {quality['hits']['expected']}"))
    return GgufResult(gguf=str(gguf_file), kind=spec.kind, quantization=spec.quantization, verify=result,
                      chat_template=result.get("chat_template", False), quality=quality)


def _publish(partial: Path, target: Path, name: str, result: dict) -> None:
    """Move the finished GGUF into gguf/ beside earlier exports; verify.json keeps one entry per file."""
    target.mkdir(exist_ok=True)
    checks = json.loads((target / "verify.json").read_text()) if (target / "verify.json").exists() else {}
    if result.get("verified"):
        checks[name] = result
        atomic_write_text(target / "verify.json", json.dumps(checks, indent=1) + "\n")
    os.replace(partial / name, target / name)
    fsync_dir(target)


def _build(spec: GgufSpec, merged: Path, partial: Path, emit) -> tuple[str, dict]:
    step = lambda name: emit(events.Metric(key="export_step", value=name))  # noqa: E731
    outtype = spec.quantization if spec.quantization in llama_tools.CONVERTER_TYPES else "f16"
    converted = partial / f"converted-{outtype}.gguf"
    step(f"convert ({outtype})")
    llama_tools.convert(merged, converted, outtype, log)
    Faults.from_env().power_cut("gguf")
    tokenizer_fix.correct_vocabulary(converted, merged)
    final = partial / f"model-{spec.quantization}.gguf"
    if spec.quantization in llama_tools.CONVERTER_TYPES:
        _fix_space_prefix(converted, final, merged)
    else:
        step(f"quantize ({spec.quantization})")
        llama_tools.quantize(converted, final, spec.quantization, _space_prefix_override(converted, merged))
        converted.unlink()
    result: dict = {"verified": False,
                    "chat_template": llama_tools.read_field(final, "tokenizer.chat_template") is not None}
    if spec.verify:
        step("verify")
        result |= verify.compare(final, merged, _cases(spec, merged), spec.quantization)
        result["verified"] = True
        check_result(result, spec.quantization, emit)
    return final.name, result


def check_result(result: dict, quantization: str, emit) -> None:
    """Refuse a GGUF that failed verification, with the fix of the measure that failed."""
    emit(events.Metric(key="top1_agreement", value=result["top1_agreement"]))
    if result.get("tokenizer_llama_cpp_rules"):
        texts = ", ".join(repr(text) for text in result["tokenizer_llama_cpp_rules"])
        emit(events.Warning(code="gguf_llama_cpp_control_tokens", message=(
            f"llama.cpp makes {texts} control tokens whatever the GGUF says: in message text it splits them "
            "where the model's tokenizer keeps them whole (verified around them)")))
    if result["passed"]:
        return
    # The fix follows the measure: a larger type cannot mend a vocabulary, only the predictions.
    if result["tokenizer_mismatches"]:
        raise BackpropError("RUNTIME_GGUF_TOKENIZER_MISMATCH", quantization=quantization,
                            details="; ".join(result["problems"]))
    raise BackpropError("RUNTIME_GGUF_VERIFY_FAILED", quantization=quantization,
                        details="; ".join(result["problems"]), larger=verify.larger_types(quantization))


def _build_lora(spec: GgufSpec, partial: Path, emit) -> tuple[str, dict]:
    """The adapter alone as a LoRA GGUF; verified by applying it in llama.cpp to an f16 base."""
    step = lambda name: emit(events.Metric(key="export_step", value=name))  # noqa: E731
    base = base_folder(spec.base_model)
    adapter_file = partial / "adapter-f16.gguf"
    step("convert adapter (f16)")
    llama_tools.convert_lora(Path(spec.adapter), base, adapter_file, log)
    result: dict = {"verified": False}
    if spec.verify:
        step("convert base for verification (f16)")
        base_gguf = partial / "base-f16.verify.gguf"
        _convert_fixed(base, base_gguf, "f16", partial)
        step("verify")
        result |= verify.compare(base_gguf, base, _cases(spec, base), "f16", lora_path=adapter_file,
                                 adapter_dir=spec.adapter)
        result["verified"] = True
        base_gguf.unlink()
        check_result(result, "f16 LoRA", emit)
    return adapter_file.name, result


def _convert_fixed(model_dir: Path, target: Path, outtype: str, partial: Path) -> None:
    raw = partial / f"raw-{target.name}"
    llama_tools.convert(model_dir, raw, outtype, log)
    tokenizer_fix.correct_vocabulary(raw, model_dir)
    _fix_space_prefix(raw, target, model_dir)


def _fix_space_prefix(source: Path, target: Path, model_dir: Path) -> None:
    """Move ``source`` to ``target``, with add_space_prefix=false written in where tokenizer_fix asks for it."""
    override = _space_prefix_override(source, model_dir)
    if override:
        llama_tools.quantize(source, target, None, override)
        source.unlink()
    else:
        source.rename(target)


def _space_prefix_override(gguf_file: Path, model_dir: Path) -> dict:
    return {"tokenizer.ggml.add_space_prefix": False} if tokenizer_fix.needs_no_space_prefix(gguf_file, model_dir) \
        else {}


def _cases(spec: GgufSpec, merged: Path) -> list:
    from backpropagate_stages import model_tokenizer

    tokenizer = model_tokenizer.load(merged)
    return verify.verification_cases(tokenizer, read_datasets([Path(spec.data)] if spec.data else []))


def read_datasets(paths: list[Path]) -> list[list]:
    """The examples of each data file; a folder (a campaign's data/) gives its files in run order."""
    files = [file for path in paths for file in (sorted(path.glob("*.jsonl"), key=_run_order) if path.is_dir()
                                                 else [path])]
    return [list(load_dataset(file, skip_invalid=True).examples) for file in files]


def _run_order(file: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", file.stem))


def _versions() -> dict:
    from importlib.metadata import version

    return {"llama-cpp-python": version("llama-cpp-python")}
