"""The pinned llama.cpp: its converter (a script beside the venv) and its quantizer (llama-cpp-python).

scripts/setup_llama_cpp.sh puts both in place from one llama-cpp-python sdist, so
converter, quantizer and the runtime that verifies agree on the GGUF format.
"""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

from backpropagate.contract import gguf_header as header
from backpropagate.contract.errors import BackpropError

from backpropagate_stages.train.faults import Faults

# The converter writes f16, bf16 and q8_0 itself; the other types are quantized from f16.
CONVERTER_TYPES = ("f16", "bf16", "q8_0")
FTYPES = {"q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
          "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def tools_dir() -> Path:
    folder = Path(os.environ.get("LLAMA_CPP_DIR") or Path(sys.prefix) / "share" / "llama.cpp")
    if not (folder / "convert_hf_to_gguf.py").exists():
        raise BackpropError("DEP_LLAMA_CPP_MISSING", reason=f"no convert_hf_to_gguf.py in {folder}")
    return folder


def llama_cpp():
    try:
        import llama_cpp as module
    except ImportError as exc:
        raise BackpropError("DEP_LLAMA_CPP_MISSING", reason=f"llama_cpp does not import ({exc})") from None
    return module


def convert(model_dir: Path, out_file: Path, outtype: str, log) -> None:
    _run_converter(["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out_file), "--outtype", outtype],
                   out_file, "convert", model_dir, log)


def convert_lora(adapter_dir: Path, base_dir: Path, out_file: Path, log) -> None:
    _run_converter(["convert_lora_to_gguf.py", str(adapter_dir), "--base", str(base_dir), "--outfile",
                    str(out_file), "--outtype", "f16"], out_file, "convert the adapter of", base_dir, log)


def _run_converter(arguments: list[str], out_file: Path, step: str, model: Path, log) -> None:
    """Run one of llama.cpp's converter scripts; its last error line becomes the coded error's reason."""
    script, *rest = arguments
    Faults.from_env().power_cut_once_written("convert", out_file)
    done = subprocess.run([sys.executable, str(tools_dir() / script), *rest], capture_output=True, text=True)
    log.info("%s exit %s\n%s", script, done.returncode, done.stdout[-4000:] + done.stderr[-4000:])
    if done.returncode != 0 or not out_file.exists():
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackpropError("RUNTIME_GGUF_EXPORT_FAILED", step=step, model=model,
                            reason=lines[-1] if lines else f"exit code {done.returncode}", log="log.txt")


def quantize(source: Path, target: Path, quantization: str | None, overrides: dict[str, bool | str] | None = None
             ) -> None:
    """Quantize ``source`` into ``target``, or with ``quantization`` None copy its tensors as they are; either
    way ``overrides`` (keys set to a bool or a string) go into the metadata as the quantizer copies it, which
    saves a second pass over the file."""
    module = llama_cpp()
    params = module.llama_model_quantize_default_params()
    if quantization is None:
        params.only_copy = True
    else:
        params.ftype = getattr(module, FTYPES[quantization])
    params.nthread = os.cpu_count() or 1
    entries = (module.llama_model_kv_override * (len(overrides or {}) + 1))()  # a zeroed entry ends the list
    for entry, (key, value) in zip(entries, (overrides or {}).items()):
        entry.key = key.encode()
        if isinstance(value, bool):
            entry.tag, entry.value.val_bool = module.LLAMA_KV_OVERRIDE_TYPE_BOOL, value
        else:
            entry.tag, entry.value.val_str = module.LLAMA_KV_OVERRIDE_TYPE_STR, value.encode()
    if overrides:
        params.kv_overrides = ctypes.cast(entries, ctypes.POINTER(module.llama_model_kv_override))
    if module.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)) != 0:
        raise BackpropError("RUNTIME_GGUF_EXPORT_FAILED", step=f"quantize to {quantization}" if quantization else
                            "copy", model=source, reason="llama_model_quantize returned an error", log="log.txt")


def read_field(path: Path, key: str):
    return header.read(path, (key,))[key]
