"""What a registration is made of: the GGUF, the chat template it was trained with, and the run it came from.

The target is a run (id, prefix or folder) or a .gguf file. A run's chat template
is read from its merged model's tokenizer files (for a LoRA GGUF, from the base
model's), a loose GGUF's from its embedded ``tokenizer.chat_template``.
``num_ctx`` is the run's training sequence length, where a run is known.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.specs import TrainSpec, read_spec
from backpropagate.contract.user_files import check_or_refuse
from backpropagate.ollama.gguf_meta import read_metadata, token_text

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class Source:
    gguf: Path
    chat_template: str
    template_origin: str  # where the chat template was read, for messages
    special_tokens: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    num_ctx: int | None = None
    lora: bool = False


def resolve(target: str, output: Path, quantization: str | None = None, lora: bool = False) -> Source:
    path = Path(target).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise BackpropError("INPUT_GGUF_NOT_FOUND", target=target)
        check_or_refuse(path, "TARGET", ".gguf file")
        return _from_gguf(path.resolve(), _run_of(path.resolve(), output))
    if RunFolder(path).holds_run:
        folder = RunFolder(path.resolve())
    else:
        folder = RunFolder.of(output, RunHistory(output).find(target).run_id)
    gguf = folder.exported_gguf(quantization, lora)
    if gguf is None:
        raise BackpropError("INPUT_GGUF_NOT_FOUND", target=target)
    train = read_spec(TrainSpec, folder.spec) if folder.spec.exists() else None
    tokenizer_dir = Path(train.model) if lora and train else folder.merged
    template, tokens = tokenizer_template(tokenizer_dir)
    if template is None and not lora:
        return _from_gguf(gguf, folder)
    return Source(gguf=gguf, chat_template=template or "", template_origin=str(tokenizer_dir), special_tokens=tokens,
                  run_id=folder.root.name, num_ctx=train.training.max_seq_length if train else None, lora=lora)


def tokenizer_template(folder: Path) -> tuple[str | None, dict[str, str]]:
    """The chat template and special tokens of a saved tokenizer (tokenizer_config.json, chat_template.jinja)."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    tokens = {key: _token(config.get(key)) for key in SPECIAL_TOKENS}
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    jinja = folder / "chat_template.jinja"
    if template is None and jinja.exists():
        template = jinja.read_text(encoding="utf-8")
    return template, tokens


def _from_gguf(gguf: Path, folder: RunFolder | None) -> Source:
    metadata = read_metadata(gguf)
    tokens = {"bos_token": token_text(metadata, "tokenizer.ggml.bos_token_id"),
              "eos_token": token_text(metadata, "tokenizer.ggml.eos_token_id")}
    train = read_spec(TrainSpec, folder.spec) if folder and folder.spec.exists() else None
    return Source(gguf=gguf, chat_template=metadata.get("tokenizer.chat_template", ""), template_origin=str(gguf),
                  special_tokens=tokens, run_id=folder.root.name if folder else None,
                  num_ctx=train.training.max_seq_length if train else None)


def _run_of(gguf: Path, output: Path) -> RunFolder | None:
    """The run a GGUF belongs to, when it lies in <output>/<run_id>/gguf/."""
    folder = RunFolder(gguf.parent.parent)
    if gguf.parent == folder.gguf and folder.holds_run and folder.root.parent == Path(output).resolve():
        return folder
    return None


def _token(value) -> str:
    if isinstance(value, dict):
        return value.get("content", "")
    return value if isinstance(value, str) else ""
