"""`backprop ollama`: register an exported model with Ollama, list and remove what was registered, print a Modelfile."""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract import events
from backpropagate.contract.events import Envelope
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop ollama register 3f2a --name my-model

  backprop ollama register output/3f2a.../gguf/model-q4_k_m.gguf --name my-model --system "Answer briefly."

  backprop ollama register 3f2a --name my-lora --lora --base qwen2.5:0.5b

  backprop ollama modelfile 3f2a > Modelfile && ollama create my-model -f Modelfile

  backprop ollama list

  backprop ollama rm my-model
"""

app = typer.Typer(help="Register exported models with Ollama (OLLAMA_HOST, default http://127.0.0.1:11434).",
                  no_args_is_help=True, epilog=EXAMPLES, rich_markup_mode=None)

TargetArg = Annotated[str, typer.Argument(help="Run id or prefix (its exported GGUF), run folder, or a .gguf file.")]
SystemOpt = Annotated[str | None, typer.Option(help="A system message the model starts every chat with.")]
TemplateOpt = Annotated[Path | None, typer.Option(
    "--template", exists=True, dir_okay=False,
    help="An Ollama Go template to use instead of the one derived from the tokenizer (needs --stop).")]
StopOpt = Annotated[list[str] | None, typer.Option("--stop", help="A stop token (repeat for several); replaces "
                                                                  "the derived ones.")]
QuantizationOpt = Annotated[str | None, typer.Option(help="Which of the run's GGUFs (model-<type>.gguf); the newest "
                                                         "when not given.")]
ContainerOpt = Annotated[bool, typer.Option("--ollama-container", help="When no Ollama server answers, start the "
                                                                       "pinned ollama/ollama image in Docker.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for each answer from Ollama.")]
LoraOpt = Annotated[bool, typer.Option("--lora", help="Register the run's LoRA GGUF (export --format lora-gguf) "
                                                      "as an adapter on --base.")]
BaseOpt = Annotated[str | None, typer.Option(help="With --lora: the Ollama model the adapter applies to.")]


@app.command("register", epilog=EXAMPLES)
def register(
    target: TargetArg,
    name: Annotated[str, typer.Option(help="Name of the Ollama model to create, e.g. my-model or my-model:v1.")],
    system: SystemOpt = None,
    template: TemplateOpt = None,
    stop: StopOpt = None,
    quantization: QuantizationOpt = None,
    lora: LoraOpt = False,
    base: BaseOpt = None,
    ollama_container: ContainerOpt = False,
    timeout: TimeoutOpt = 120.0,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Create an Ollama model from an exported GGUF, with the template and stop tokens of its own tokenizer."""
    from backpropagate.contract.errors import BackpropError
    from backpropagate.ollama.source import resolve

    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    if lora != bool(base):
        raise BackpropError("CONFIG_VALUE_INVALID", name="--base", value=base or "", reason="--lora and --base go "
                            "together", allowed="--lora --base OLLAMA_MODEL, or neither")
    out = Output(json_mode=settings.log_json)
    source = resolve(target, output_dir(settings), quantization, lora)
    result = register_source(source, name, out, output_dir(settings), system=system, template_file=template,
                             stops=stop or [], use_container=ollama_container, timeout_s=timeout, base=base)
    out.result(_registered_text(result), result)


def register_source(source, name: str, out: Output, output: Path, system: str | None = None,
                    template_file: Path | None = None, stops: list[str] | None = None, use_container: bool = False,
                    timeout_s: float = 120.0, base: str | None = None) -> dict:
    """Register ``source`` as ``name``, streaming Ollama's status lines to ``out``."""
    from backpropagate.ollama.client import OllamaClient
    from backpropagate.ollama.container import ensure_server
    from backpropagate.ollama.register import OllamaPublisher, choose_template
    from backpropagate.publishers import publish

    chosen = choose_template(source, template_file, stops or [])
    if system and not chosen.takes_system:
        out.warn(f"the tokenizer's own template takes no system message; the {chosen.family} template puts it "
                 "before the first user message")
    run_id = source.run_id or ""

    def status(text: str) -> None:
        out.event(Envelope(run_id=run_id, stage="ollama", event=events.Metric(key="ollama_status", value=text)))

    client = OllamaClient(timeout_s=timeout_s, on_wait=out.waiting)
    ensure_server(client, use_container)
    return publish(OllamaPublisher(client, source, name, chosen, status, system=system, base=base), output)


@app.command("modelfile", epilog=EXAMPLES)
def modelfile(
    target: TargetArg,
    name: Annotated[str, typer.Option(help="Model name for the `ollama create` line.")] = "my-model",
    system: SystemOpt = None,
    template: TemplateOpt = None,
    stop: StopOpt = None,
    quantization: QuantizationOpt = None,
    lora: LoraOpt = False,
    base: BaseOpt = None,
    output: OutputOpt = None,
) -> None:
    """Print the Modelfile that registers the same model with `ollama create NAME -f Modelfile`."""
    from backpropagate.ollama.modelfile import modelfile as render
    from backpropagate.ollama.register import choose_template, create_request
    from backpropagate.ollama.source import resolve

    settings = load_settings(overrides={"output": str(output) if output else None})
    source = resolve(target, output_dir(settings), quantization, lora)
    chosen = choose_template(source, template, stop or [])
    request = create_request(name, source, chosen, "sha256:-", system, base)
    print(render(request, source.gguf), end="")


@app.command("list", epilog=EXAMPLES)
def list_models(
    show_all: Annotated[bool, typer.Option("--all", help="Every model on the server, not only those registered "
                                                         "from this workspace.")] = False,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """The models registered from this workspace that the Ollama server has."""
    from backpropagate.ollama.client import OllamaClient
    from backpropagate.ollama.register import registered_names

    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    out = Output(json_mode=settings.log_json)
    ours = registered_names(output_dir(settings))
    models = [{"name": m["name"], "run_id": ours.get(m["name"]), "size": m.get("size"), "digest": m.get("digest"),
               "modified_at": m.get("modified_at")}
              for m in OllamaClient(on_wait=out.waiting).tags() if show_all or m["name"] in ours]
    text = "\n".join(f"{m['name']:<32} {m['run_id'] or '-':<36} {m['size'] or 0:>14,}" for m in models)
    out.result(text or "no models registered from this workspace", {"models": models})


@app.command("rm", epilog=EXAMPLES)
def remove(
    name: Annotated[str, typer.Argument(help="The Ollama model to delete.")],
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Delete a model from the Ollama server and from the run history's record of registrations."""
    from backpropagate.ollama.client import OllamaClient
    from backpropagate.ollama.register import forget

    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    out = Output(json_mode=settings.log_json)
    OllamaClient(on_wait=out.waiting).delete(name)
    forget(output_dir(settings), name)
    out.result(f"deleted {name}", {"deleted": name})


def _registered_text(result: dict) -> str:
    return (f"ollama: {result['name']} created at {result['host']} ({result['family']} template, "
            f"stop {', '.join(result['stops'])})\nnext: ollama run {result['name']}")
