"""Registering a GGUF with Ollama: template, upload (skipped when the blob is there), create, record.

The create request is the current API's structured form: ``files`` (or ``from`` and
``adapters`` for a LoRA on a base the user names), an explicit ``template``, stop
tokens and ``num_ctx`` in ``parameters``, and ``system`` when given. Every model
made here is recorded on its run's history row (publishers.py), which is what ``backprop
ollama list`` shows.
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


class OllamaPublisher:
    """Registers ``source`` as the model ``name``: the blob uploaded (unless the server has it), then created."""

    name = "ollama"

    def __init__(self, client: OllamaClient, source: Source, model: str, template: OllamaTemplate,
                 on_status: Callable[[str], None], system: str | None = None, base: str | None = None) -> None:
        self.client, self.source, self.model, self.template = client, source, model, template
        self.on_status, self.system, self.base = on_status, system, base
        self.run_id = source.run_id

    def publish(self, workspace: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        source, client = self.source, self.client
        digest = file_digest(source.gguf)
        if client.has_blob(digest):
            self.on_status(f"blob {digest[:19]} is already on the server; upload skipped")
        else:
            self.on_status(f"uploading {source.gguf.name} ({source.gguf.stat().st_size:,} bytes)")
            client.push_blob(source.gguf, digest)
        request = create_request(self.model, source, self.template, digest, self.system, self.base)
        for status in client.create(request):
            self.on_status(status)
        record = {"name": self.model, "host": client.url, "gguf": str(source.gguf), "digest": digest,
                  "family": self.template.family, "registered_at": iso_time(time.time())}
        return record, {**record, "run_id": source.run_id, "stops": list(self.template.stops),
                        "num_ctx": request["parameters"].get("num_ctx"), "uploaded": True}

    def replaces(self, record: dict[str, Any], earlier: dict[str, Any]) -> bool:
        return full_name(earlier["name"]) == full_name(record["name"])


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

