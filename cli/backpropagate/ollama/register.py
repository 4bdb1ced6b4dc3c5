"""Registering a GGUF with Ollama: template, upload (skipped when the blob is there), create, record.

The create request is the current API's structured form: ``files`` (or ``from`` and
``adapters`` for a LoRA on a base the user names), an explicit ``template``, stop
tokens and ``num_ctx`` in ``parameters``, and ``system`` when given. Every model
made here is recorded on its run's history row, which is what ``backprop ollama
list`` shows.
"""

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import sha256_file
from backpropagate.contract.history import RunHistory, iso_time
from backpropagate.contract.user_files import read_user_text
from backpropagate.ollama.client import OllamaClient
from backpropagate.contract.chat_template import HfTemplate
from backpropagate.ollama.source import Source
from backpropagate.ollama.templates import OllamaTemplate, derive


def choose_template(source: Source, template_file: Path | None, stops: list[str]) -> OllamaTemplate:
    """The user's template (with their stop tokens) or the one derived from the tokenizer's chat template."""
    if template_file is not None:
        if not stops:
            raise BackpropError("CONFIG_VALUE_INVALID", name="--stop", value="", reason="--template needs its stop "
                                "tokens", allowed="--stop TOKEN once for each stop token, e.g. --stop '<|im_end|>'")
        return OllamaTemplate("user", read_user_text(template_file, "--template", 1 << 20, "Ollama template file"),
                              tuple(stops))
    derived = derive(HfTemplate(source.chat_template, source.special_tokens, source.template_origin),
                     source.template_origin)
    return replace(derived, stops=tuple(stops)) if stops else derived


def create_request(name: str, source: Source, template: OllamaTemplate, digest: str, system: str | None = None,
                   base: str | None = None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"stop": list(template.stops)}
    if source.num_ctx:
        parameters["num_ctx"] = source.num_ctx
    request: dict[str, Any] = {"model": name, "template": template.template, "parameters": parameters}
    if base:
        request |= {"from": base, "adapters": {source.gguf.name: digest}}
    else:
        request["files"] = {source.gguf.name: digest}
    if system:
        request["system"] = system
    return request


def file_digest(path: Path) -> str:
    """The blob digest Ollama names a file by."""
    return "sha256:" + sha256_file(path)


def register(client: OllamaClient, source: Source, name: str, template: OllamaTemplate, output: Path,
             on_status: Callable[[str], None], system: str | None = None, base: str | None = None) -> dict[str, Any]:
    digest = file_digest(source.gguf)
    if client.has_blob(digest):
        on_status(f"blob {digest[:19]} is already on the server; upload skipped")
    else:
        on_status(f"uploading {source.gguf.name} ({source.gguf.stat().st_size:,} bytes)")
        client.push_blob(source.gguf, digest)
    request = create_request(name, source, template, digest, system, base)
    for status in client.create(request):
        on_status(status)
    record = {"name": name, "host": client.url, "gguf": str(source.gguf), "digest": digest,
              "family": template.family, "registered_at": iso_time(time.time())}
    if source.run_id:
        _record(output, source.run_id, record)
    return {**record, "run_id": source.run_id, "stops": list(template.stops),
            "num_ctx": request["parameters"].get("num_ctx"), "uploaded": True}


def registered_names(output: Path) -> dict[str, str]:
    """Model name (with its tag) -> run id, for every model this workspace registered."""
    return {full_name(entry["name"]): row.run_id for row in RunHistory(output).rows() for entry in row.ollama}


def forget(output: Path, name: str) -> None:
    history = RunHistory(output)
    for row in history.rows():
        kept = [entry for entry in row.ollama if full_name(entry["name"]) != full_name(name)]
        if len(kept) != len(row.ollama):
            history.update(row.run_id, ollama=kept)


def full_name(name: str) -> str:
    """Ollama's name with its tag: ``my-model`` is ``my-model:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _record(output: Path, run_id: str, record: dict) -> None:
    history = RunHistory(output)
    row = history.get(run_id)
    if row is None:
        return
    earlier = [entry for entry in row.ollama if full_name(entry["name"]) != full_name(record["name"])]
    history.update(run_id, ollama=earlier + [record])
