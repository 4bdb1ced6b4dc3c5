"""Export formats as data: for each, the stage steps it runs and the options it takes.

A flag a format does not take is refused (``--quantization`` with ``lora-gguf``, whose adapter
is always f16) rather than silently ignored. Adding a format: one entry below, plus a stage
in the stage registry if it needs a new one.
"""

from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.specs import QUANTIZATIONS


@dataclass(frozen=True)
class ExportFormat:
    name: str
    steps: tuple[str, ...]  # stage names, run in order
    options: frozenset[str]  # the export options it takes, by flag
    help: str


EXPORT_FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("merged", ("merge",), frozenset({"--dtype"}),
                 "the adapter folded into the base, as safetensors"),
    ExportFormat("gguf", ("merge", "gguf"), frozenset({"--dtype", "--quantization", "--no-verify", "--ollama"}),
                 "that, converted and quantized with the pinned llama.cpp, then verified"),
    ExportFormat("lora-gguf", ("gguf",), frozenset({"--no-verify"}),
                 "the adapter alone (f16), for llama.cpp's --lora on the base"),
)}


def check_export(export_format: str, given: set[str], quantization: str | None) -> ExportFormat:
    """The format, once its name, the options given with it and the quantization are known to fit."""
    if export_format not in EXPORT_FORMATS:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--format", value=export_format,
                            reason="not an export format", allowed="one of " + ", ".join(EXPORT_FORMATS))
    chosen = EXPORT_FORMATS[export_format]
    if "--ollama" in given and "--ollama" not in chosen.options:
        raise BackpropError("CONFIG_OLLAMA_NEEDS_GGUF", export_format=export_format)
    for option in sorted(given - chosen.options):
        raise BackpropError("CONFIG_OPTION_NOT_FOR_FORMAT", option=option, export_format=export_format,
                            accepted=", ".join(sorted(chosen.options)))
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--quantization", value=quantization,
                            reason="not a GGUF type this export makes", allowed="one of " + ", ".join(QUANTIZATIONS))
    return chosen
