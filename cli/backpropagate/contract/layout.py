"""The run folder: where one run keeps its spec, events, log, checkpoints and artifacts."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path  # <output>/<run_id>

    @classmethod
    def of(cls, output: Path, run_id: str) -> "RunFolder":
        return cls(Path(output) / run_id)

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

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
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def gguf(self) -> Path:
        return self.root / "gguf"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"
