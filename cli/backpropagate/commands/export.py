"""`backprop export`: turn a trained adapter into a model folder others can load."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt, RuntimeOpt
from backpropagate.commands._run import runtime_for
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.specs import QUANTIZATIONS
from backpropagate.output import Output
from backpropagate.runs.export import execute_export, plan_export

EXAMPLES = """
Examples:

  backprop export 3f2a --format merged

  backprop export 3f2a --format gguf --quantization q4_k_m

  backprop export 3f2a --format lora-gguf

  backprop export 3f2a --format gguf --quantization q4_k_m --ollama --ollama-name my-model

  backprop export output/3f2a9c1e-.../adapter --format merged --dtype bfloat16
"""


def export(
    run: Annotated[str, typer.Argument(help="Run id or prefix, run folder, or adapter folder.")],
    export_format: Annotated[Literal["merged", "gguf", "lora-gguf"], typer.Option(
        "--format", help="merged: the adapter folded into the base, as safetensors; gguf: that, converted and "
                         "quantized with the pinned llama.cpp, then verified; lora-gguf: the adapter alone "
                         "(f16), for llama.cpp's --lora on the base.")] = "merged",
    quantization: Annotated[str, typer.Option(help="GGUF type: " + ", ".join(QUANTIZATIONS) + ".")] = "q4_k_m",
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the GGUF against the merged model "
                                                                      "(tokens, top-1 agreement, perplexity).")
                      ] = True,
    dtype: Annotated[Literal["float16", "bfloat16", "float32"], typer.Option(help="Weights of the merged model.")
                     ] = "float16",
    ollama: Annotated[bool, typer.Option("--ollama", help="Register the GGUF with Ollama (OLLAMA_HOST) once it is "
                                                          "exported, with its tokenizer's template and stop tokens.")
                      ] = False,
    ollama_name: Annotated[str | None, typer.Option(help="Name of the Ollama model (default: the run id).")] = None,
    ollama_container: Annotated[bool, typer.Option("--ollama-container", help="When no Ollama server answers, "
                                                   "start the pinned ollama/ollama image in Docker.")] = False,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
) -> None:
    """Merge a run's adapter into its base model (one tensor at a time), and optionally convert it to GGUF."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output,
                                        "runtime": runtime})
    if quantization not in QUANTIZATIONS:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--quantization", value=quantization,
                            reason="not a GGUF type this export makes", allowed="one of " + ", ".join(QUANTIZATIONS))
    if (ollama or ollama_name) and export_format != "gguf":
        raise BackpropError("CONFIG_OLLAMA_NEEDS_GGUF", export_format=export_format)
    if ollama or ollama_name:  # before the export, so a missing server does not cost a whole export
        _check_ollama(ollama_container)
    out = Output(json_mode=settings.log_json)
    plan = plan_export(output_dir(settings), run, dtype, export_format, quantization, verify)
    out.note(f"export run_id={plan.spec.run_id}: merge {Path(plan.spec.adapter)} into {plan.spec.base_model}")
    outputs = execute_export(plan, runtime_for(settings, out), out.event)
    lines = [f"merged: {outputs['merged']} ({outputs['shards']} shard(s), {outputs['dtype']})"] \
        if "merged" in outputs else []
    if "gguf" in outputs:
        check = outputs["verify"]
        lines.append(f"gguf: {outputs['gguf']} " + (
            f"(verified: top-1 agreement {check['top1_agreement']:.1%}, perplexity {check['perplexity_gguf']} "
            f"vs {check['perplexity_merged']})" if check.get("verified") else "(not verified)"))
    if ollama or ollama_name:
        registered = _register(outputs["gguf"], ollama_name or plan.spec.run_id, ollama_container,
                               out, output_dir(settings))
        outputs["ollama"] = registered
        lines.append(f"ollama: {registered['name']} (try: ollama run {registered['name']})")
    text = "\n".join(lines)
    out.result(text, {"run_id": plan.spec.run_id, "format": export_format, **outputs})


def _register(gguf: str, name: str, use_container: bool, out: Output, output: Path) -> dict:
    from backpropagate.commands.ollama import register_source
    from backpropagate.ollama.source import resolve

    return register_source(resolve(gguf, output), name, out, output, use_container=use_container)


def _check_ollama(use_container: bool) -> None:
    from backpropagate.ollama.client import OllamaClient
    from backpropagate.ollama.container import ensure_server

    ensure_server(OllamaClient(), use_container)
