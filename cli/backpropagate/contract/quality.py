"""The quality report of a run: held-out loss over training, and answers to prompts before and after.

``quality.json`` in the run folder is written by the stages that measure (train, eval, gguf) and read
by the host (`show-run`, the history row, `--json`, the API). Prompts come from a JSONL file, one
``{"prompt": ..., "expect": ..., "kind": ...}`` per line: ``expect`` is text a right answer contains
(compared without case; ``eleven|11`` accepts either), ``kind`` is free (``taught``, ``general``) and groups the hits.
"""

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from backpropagate.contract import bounded_json
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text
from backpropagate.contract.redact import redact
from backpropagate.contract.schema import from_dict, to_dict
from backpropagate.contract.user_files import FileRefused, check_user_file, open_user_file

# Prompts are answered one by one by each model; a file this large is not a prompts file.
MAX_PROMPTS_BYTES = 16 << 20


@dataclass(frozen=True)
class Prompt:
    prompt: str
    expect: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Answered:
    """One prompt and what each model answered: the base, the fine-tune, and each exported GGUF."""

    prompt: str
    expect: str = ""
    kind: str = ""
    base: str = ""
    fine_tune: str = ""
    gguf: dict = field(default_factory=dict)  # GGUF file name -> its answer


@dataclass(frozen=True)
class QualityReport:
    eval_source: str = ""  # where the held-out rows came from, for people
    eval_examples: int = 0
    eval_loss: list = field(default_factory=list)  # [step, loss] pairs; step 0 is the base, before training
    answers: list[Answered] = field(default_factory=list)

    def hits(self) -> dict[str, int]:
        """How many answers contain their expected text, per model, over the prompts that expect one."""
        expected = [a for a in self.answers if a.expect]
        counts = {"expected": len(expected),
                  "base": sum(hit(a.base, a.expect) for a in expected),
                  "fine_tune": sum(hit(a.fine_tune, a.expect) for a in expected)}
        for name in sorted({name for a in expected for name in a.gguf}):
            counts[f"gguf:{name}"] = sum(hit(a.gguf.get(name, ""), a.expect) for a in expected)
        return counts

    def summary(self) -> dict:
        """What the history row keeps: losses before and after, and the hit counts."""
        data: dict = {}
        if self.eval_loss:
            data |= {"eval_loss_before": self.eval_loss[0][1], "eval_loss_after": self.eval_loss[-1][1],
                     "eval_examples": self.eval_examples}
        if self.answers:
            data["hits"] = self.hits()
        return data


def split_held_out(rows: list, fraction: float, seed: int | str) -> tuple[list, list]:
    """(kept, held out): a seeded ``fraction`` of the rows, at least one, set aside; at least one stays.

    The one rule of --eval-split, for the train and eval stages and for a campaign that holds each run's rows
    out when it is planned; the caller refuses fewer than two rows."""
    count = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    chosen = set(random.Random(seed).sample(range(len(rows)), count))
    return [row for i, row in enumerate(rows) if i not in chosen], [row for i, row in enumerate(rows) if i in chosen]


def hit(answer: str, expect: str) -> bool:
    """Whether the answer contains the expected text, or one of its ``|``-separated alternatives."""
    return any(option.strip() and option.strip().lower() in answer.lower() for option in expect.split("|"))


def read_report(path: Path) -> QualityReport | None:
    """The run's report, or None when it has none."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise BackpropError("STATE_QUALITY_REPORT_INVALID", path=path, reason=f"not JSON ({exc})") from None
    report, problems = from_dict(QualityReport, {**data, "answers": []})
    answers = []
    for index, item in enumerate(data.get("answers", [])):
        answered, more = from_dict(Answered, item, f"answers[{index}].")
        problems += more
        answers.append(answered)
    if problems:
        raise BackpropError("STATE_QUALITY_REPORT_INVALID", path=path, reason="; ".join(problems))
    return QualityReport(**{**vars(report), "answers": answers})


def write_report(path: Path, report: QualityReport) -> None:
    atomic_write_text(path, json.dumps(to_dict(report), indent=1, ensure_ascii=False) + "\n")


def prompts_file(path: str | Path) -> Path:
    """The absolute path of the --eval-prompts file, checked before anything reads it."""
    try:
        return check_user_file(path, "--eval-prompts", "JSONL file")
    except FileRefused as refused:
        raise _unreadable(redact(str(path)), refused) from None


def load_prompts(path: Path, shown: str = "") -> list[Prompt]:
    """The prompts of a JSONL file; INPUT_EVAL_PROMPTS_INVALID names the first bad line."""
    shown = shown or str(path)
    try:
        with open_user_file(Path(path), "--eval-prompts", "JSONL file") as handle:
            data = handle.read(MAX_PROMPTS_BYTES + 1)
    except FileRefused as refused:
        raise _unreadable(shown, refused) from None
    if len(data) > MAX_PROMPTS_BYTES:
        raise BackpropError("INPUT_EVAL_PROMPTS_UNREADABLE", path=shown, reason=f"it is over {MAX_PROMPTS_BYTES:,} "
                            "bytes, more prompts than any evaluation answers",
                            remedy="keep the prompts to answer in a smaller file (a few hundred lines)")
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BackpropError("INPUT_EVAL_PROMPTS_UNREADABLE", path=shown, reason=f"it is not UTF-8 (byte "
                            f"0x{data[exc.start]:02x} on line {line})",
                            remedy="save it as UTF-8 (your editor's save-with-encoding UTF-8, or iconv -t UTF-8)") \
            from None
    prompts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = bounded_json.loads(line)
        except bounded_json.JSONTooComplex as exc:
            raise BackpropError("INPUT_EVAL_PROMPTS_INVALID", location=f"{shown}:{number}",
                                reason=f"too complex to read: {exc}") from None
        except ValueError:
            raise BackpropError("INPUT_EVAL_PROMPTS_INVALID", location=f"{shown}:{number}",
                                reason="not a JSON object") from None
        prompt, problems = from_dict(Prompt, row)
        if problems or not prompt.prompt.strip():
            raise BackpropError("INPUT_EVAL_PROMPTS_INVALID", location=f"{shown}:{number}",
                                reason="; ".join(problems) or "the prompt is empty")
        prompts.append(prompt)
    if not prompts:
        raise BackpropError("INPUT_EVAL_PROMPTS_INVALID", location=shown, reason="the file holds no prompt")
    return prompts


def _unreadable(shown: str, refused: FileRefused) -> BackpropError:
    return BackpropError("INPUT_EVAL_PROMPTS_UNREADABLE", path=shown, reason=refused.reason, remedy=refused.remedy)
