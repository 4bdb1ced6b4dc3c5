"""`backprop export`: turn a trained adapter into a model folder others can load."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt, RuntimeOpt
from backpropagate.commands._quality import quality_table
from backpropagate.config import command_settings, output_dir, output_flag
from backpropagate.contract.quality import read_report
from backpropagate.contract.schema import to_dict
from backpropagate.contract.specs import QUANTIZATIONS
from backpropagate.hub.target import check_repo
from backpropagate.output import Output, for_people
from backpropagate.runs.export import plan_export
from backpropagate.runs.exports import EXPORT_FORMATS, check_export
from backpropagate.runs.session import Session

EXAMPLES = """
Examples:

  backprop export 3f2a --format merged

  backprop export 3f2a --format gguf --quantization q4_k_m

  backprop export 3f2a --format lora-gguf

  backprop export 3f2a --format gguf --quantization q4_k_m --ollama --ollama-name my-model

  backprop export output/3f2a9c1e-.../adapter --format merged --dtype bfloat16

  backprop export 3f2a --format gguf --quantization q4_k_m --push-to-hub me/my-model-gguf
"""


def export(
    run: Annotated[str, typer.Argument(help="Run id or prefix, run folder, or adapter folder.")],
    export_format: Annotated[str, typer.Option(
        "--format", help="; ".join(f"{f.name}: {f.help}" for f in EXPORT_FORMATS.values()) + ".")] = "merged",
    quantization: Annotated[str | None, typer.Option(help="GGUF type: " + ", ".join(QUANTIZATIONS)
                                                          + " [default q4_k_m].")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the GGUF against the merged model "
                                                                      "(tokens, top-1 agreement, perplexity).")
                      ] = True,
    dtype: Annotated[Literal["float16", "bfloat16", "float32"] | None, typer.Option(
        help="Weights of the merged model [default float16].")] = None,
    ollama: Annotated[bool, typer.Option("--ollama", help="Register the GGUF with Ollama (OLLAMA_HOST) once it is "
                                                          "exported, with its tokenizer's template and stop tokens.")
                      ] = False,
    ollama_name: Annotated[str | None, typer.Option(help="Name of the Ollama model [default the run id].")] = None,
    ollama_container: Annotated[bool, typer.Option("--ollama-container", help="When no Ollama server answers, "
                                                   "start the pinned ollama/ollama image in Docker.")] = False,
    push_to_hub: Annotated[str | None, typer.Option(help="Then push what was exported to this Hub repository, "
                                                         "OWNER/NAME, as `backprop push` does.")] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
    runtime: RuntimeOpt = None,
) -> None:
    """Merge a run's adapter into its base model (one tensor at a time), and optionally convert it to GGUF."""
    settings = command_settings(output, json_output, runtime)
    given = {flag for flag, value in (("--quantization", quantization), ("--dtype", dtype),
                                      ("--no-verify", None if verify else True),
                                      ("--ollama", (ollama or ollama_name or ollama_container) or None))
             if value is not None}
    check_export(export_format, given, quantization)
    out = Output(json_mode=settings.log_json)
    if "--ollama" in given:  # before the export, so a missing server does not cost a whole export
        _check_ollama(ollama_container, out)
    if push_to_hub is not None:
        check_repo(push_to_hub)
    plan = plan_export(output_dir(settings), run, export_format, dtype or "float16", quantization or "q4_k_m",
                       verify)
    out.note(f"exporting run {plan.run_id}: {export_format} of {plan.adapter} on {plan.base_model}")
    results = Session.for_settings(settings, out).run(plan.pipeline())
    outputs = {key: value for result in results.values() for key, value in to_dict(result).items()}
    lines = []
    if "merge" in results:
        merged = results["merge"]
        lines.append(f"merged: {merged.merged} ({merged.shards} shard(s), {merged.dtype})")
    if "gguf" in results:
        check = results["gguf"].verify
        lines.append(f"gguf: {results['gguf'].gguf} " + (
            f"(verified: top-1 agreement {check['top1_agreement']:.1%}, perplexity "
            f"{for_people(check['perplexity_gguf'])} vs {for_people(check['perplexity_merged'])})"
            if check.get("verified") else "(not verified)"))
        report = read_report(plan.folder.quality) if results["gguf"].quality else None
        if report:
            lines += quality_table(report) + [f"the whole report: backprop show-run {plan.run_id[:8]}"
                                              f"{output_flag(settings)}"]
    if "--ollama" in given:
        registered = _register(results["gguf"].gguf, ollama_name or plan.run_id, ollama_container,
                               out, output_dir(settings))
        outputs["ollama"] = registered
        lines.append(f"ollama: {registered['name']}")
    if push_to_hub is not None:
        pushed = _push(results, plan.run_id, push_to_hub, output_dir(settings), out)
        outputs["hub"] = {"repo": pushed.repo, "url": pushed.url, "commit": pushed.commit}
        lines.append(f"hub: {pushed.url} (commit {pushed.commit[:12]})")
    lines.append("next: " + _next_command(plan.run_id[:8] + output_flag(settings), export_format, outputs))
    out.result("\n".join(lines), {"run_id": plan.run_id, "format": export_format, **outputs})


def _next_command(run: str, export_format: str, outputs: dict) -> str:
    """What to run after this export: the model in Ollama, or the step that gets it there."""
    if "ollama" in outputs:
        return f"ollama run {outputs['ollama']['name']}"
    if export_format == "gguf":
        return f"backprop ollama register {run} --name my-model   # or: backprop chat {run}"
    return f"backprop export {run} --format gguf"


def _push(results: dict, run_id: str, repo: str, output: Path, out: Output):
    from backpropagate.contract.history import RunHistory
    from backpropagate.hub.push import PushRequest, push
    from backpropagate.hub.target import PushSource

    folder, what = (Path(results["gguf"].gguf).parent, "gguf") if "gguf" in results \
        else (Path(results["merge"].merged), "merged")
    row = RunHistory(output).get(run_id)
    campaign = row is not None and row.stage == "campaign"
    return push(output, PushSource(folder=folder, what=what, run_id=run_id, campaign=campaign), PushRequest(repo),
                on_wait=out.waiting)


def _register(gguf: str, name: str, use_container: bool, out: Output, output: Path) -> dict:
    from backpropagate.commands.ollama import register_source
    from backpropagate.ollama.source import resolve

    return register_source(resolve(gguf, output), name, out, output, use_container=use_container)


def _check_ollama(use_container: bool, out: Output) -> None:
    from backpropagate.ollama.client import OllamaClient
    from backpropagate.ollama.container import ensure_server

    ensure_server(OllamaClient(on_wait=out.waiting), use_container)
