"""The run folder: the name of every file one run keeps, in one place.

    <output>/<run_id>/spec.json               the train spec (the run's resolved settings)
    <output>/<run_id>/merge.spec.json         the spec of each later stage, named after it
    <output>/<run_id>/input/data              a link to the dataset file
    <output>/<run_id>/input/model             a link to a local model whose path holds a token
    <output>/<run_id>/events.jsonl            every event of every stage
    <output>/<run_id>/log.txt                 what the libraries printed, redacted
    <output>/<run_id>/checkpoints/step-N/     resume state
    <output>/<run_id>/adapter/                the final adapter
    <output>/<run_id>/merged-adapter/         a campaign run: the campaign's merged adapter after it
    <output>/<run_id>/merged/                 the merged model
    <output>/<run_id>/gguf/model-<type>.gguf  GGUF exports, adapter-f16.gguf, verify.json
    <output>/<run_id>/manifest.json           artifacts with sha256
    <output>/<run_id>/quality.json            held-out loss and answers to eval prompts

A folder being written is ``<name>.partial`` beside its final name until it is complete.
"""

from dataclasses import dataclass
from pathlib import Path

PARTIAL = ".partial"


@dataclass(frozen=True)
class RunFolder:
    root: Path  # <output>/<run_id>

    @classmethod
    def of(cls, output: Path, run_id: str) -> "RunFolder":
        return cls(Path(output) / run_id)

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    def spec_of(self, spec_file: str) -> Path:
        """A stage's spec, by the file name the stage registry gives it."""
        return self.root / spec_file

    @property
    def holds_run(self) -> bool:
        """Whether this is a run folder (one that `backprop train` planned)."""
        return self.spec.exists()

    @property
    def data_link(self) -> Path:
        return self.root / "input" / "data"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged_adapter(self) -> Path:
        return self.root / "merged-adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def gguf(self) -> Path:
        return self.root / "gguf"

    def gguf_file(self, quantization: str) -> Path:
        return self.gguf / gguf_name(quantization)

    @property
    def lora_gguf(self) -> Path:
        return self.gguf / LORA_GGUF

    @property
    def verify(self) -> Path:
        return self.gguf / "verify.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def quality(self) -> Path:
        return self.root / "quality.json"

    @property
    def model_link(self) -> Path:
        return self.root / "input" / "model"

    @property
    def eval_data_link(self) -> Path:
        return self.root / "input" / "eval-data"

    @property
    def eval_prompts_link(self) -> Path:
        return self.root / "input" / "eval-prompts"

    def exported_gguf(self, quantization: str | None = None, lora: bool = False) -> Path | None:
        """The run's GGUF: the adapter's (``lora``), the one of ``quantization``, else the newest
        model export; None when there is none. `chat` and Ollama registration both pick by this."""
        if lora:
            candidates = [self.lora_gguf]
        elif quantization:
            candidates = [self.gguf_file(quantization)]
        else:
            candidates = sorted(self.gguf.glob(gguf_name("*")), key=lambda p: p.stat().st_mtime, reverse=True)
        return next((path for path in candidates if path.is_file()), None)


LORA_GGUF = "adapter-f16.gguf"


def gguf_name(quantization: str) -> str:
    return f"model-{quantization}.gguf"


def partial(path: Path) -> Path:
    """Where ``path`` is written before it is complete."""
    return path.with_name(path.name + PARTIAL)
