"""`backprop validate`: check a dataset file before training on it."""

import statistics
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import DataOpt, FormatOpt, JsonOpt, SkipInvalidOpt
from backpropagate.config import load_settings
from backpropagate.contract.dataset import Dataset, load_dataset
from backpropagate.contract.dataset.reader import RowTooLong, row_too_long
from backpropagate.contract.errors import BackpropError
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop validate --data my.jsonl

  backprop validate --data my.jsonl --tokenizer Qwen/Qwen2.5-7B-Instruct --max-seq-length 2048

  backprop validate --data my.jsonl --tokenizer ./my-model --preview 3   # the first rows as the template renders them
"""

HISTOGRAM_BINS = 10


def validate(
    data: DataOpt,
    data_format: FormatOpt = "auto",
    skip_invalid: SkipInvalidOpt = False,
    tokenizer: Annotated[str | None, typer.Option(help="Hub id or folder whose tokenizer counts the tokens.")] = None,
    max_seq_length: Annotated[int, typer.Option(min=16, help="Report examples longer than this.")] = 1024,
    preview: Annotated[int, typer.Option(min=0, max=20, help="Show the first N valid rows as the model's chat "
                                                            "template renders them (needs --tokenizer).")] = 0,
    json_output: JsonOpt = None,
) -> None:
    """Detect a dataset's format, count its rows, and (with --tokenizer) measure token lengths."""
    settings = load_settings(overrides={"log_json": json_output})
    out = Output(json_mode=settings.log_json)
    # Read every row so all problems are listed; without --skip-invalid any problem fails the check.
    dataset = load_dataset(data, data_format, skip_invalid=True)
    report = {
        "path": str(dataset.path), "format": dataset.format, "rows": dataset.total_rows,
        "valid": len(dataset.examples), "invalid": len(dataset.dropped),
        "problems": [{"line": p.line, "reason": p.reason} for p in dataset.dropped],
    }
    if preview and not tokenizer:
        raise BackpropError("CONFIG_PREVIEW_NEEDS_TOKENIZER")
    if tokenizer:
        tok = load_tokenizer(tokenizer)
        report["tokens"] = token_stats(dataset, tok, tokenizer, max_seq_length)
        if preview:
            report["preview"] = [rendered(tok, example) for example in dataset.examples[:preview]]
    out.result(_text(report), report)
    if dataset.dropped and not skip_invalid:
        first = dataset.dropped[0]
        if isinstance(first, RowTooLong):
            raise row_too_long(dataset.path, first, others_may_train=bool(dataset.examples))
        raise BackpropError("INPUT_DATASET_INVALID", location=f"{dataset.path}:{first.line}",
                            reason=f"{first.reason} ({len(dataset.dropped)} invalid rows in all)")


def load_tokenizer(name: str):
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise BackpropError("DEP_LOCAL_STACK_MISSING", package="transformers", reason=str(exc)) from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # transformers raises many types; all mean the same to the user
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=name, reason=str(exc).splitlines()[0]) from None


def rendered(tok, example) -> str:
    """An example's text as the model is trained on it: a conversation through the chat template (the bounded,
    sandboxed rendering first), plain text as it is."""
    from backpropagate.contract.chat_template import bounded_apply

    if example.text is not None:
        return example.text
    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    return bounded_apply(tok, messages) if tok.chat_template else "\n".join(m["content"] for m in messages)


def token_stats(dataset: Dataset, tok, tokenizer_name: str, max_seq_length: int) -> dict:
    """Token lengths as the model will see them: chat template applied, special tokens included."""
    lengths = []
    for example in dataset.examples:
        if example.text is not None:
            lengths.append(len(tok(example.text)["input_ids"]) + 1)
        else:
            lengths.append(len(tok(rendered(tok, example), add_special_tokens=False)["input_ids"]))
    ordered = sorted(lengths)
    return {
        "tokenizer": tokenizer_name, "total": sum(lengths), "min": ordered[0], "max": ordered[-1],
        "mean": round(statistics.fmean(lengths), 1), "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "over_max_seq_length": sum(1 for n in lengths if n > max_seq_length), "max_seq_length": max_seq_length,
        "histogram": histogram(ordered),
    }


def histogram(ordered: list[int], bins: int = HISTOGRAM_BINS) -> list[dict]:
    """Counts of lengths in equal-width ranges [low, high] from the shortest to the longest (inclusive)."""
    low, high = ordered[0], ordered[-1]
    width = max(1, -(-(high - low + 1) // bins))  # whole tokens per bin, rounded up
    counts = [0] * (-(-(high - low + 1) // width))
    for n in ordered:
        counts[(n - low) // width] += 1
    return [{"low": low + i * width, "high": low + (i + 1) * width - 1, "count": c} for i, c in enumerate(counts)]


def _text(report: dict) -> str:
    lines = [f"{Path(report['path']).name}: {report['format']}",
             f"rows: {report['rows']} ({report['valid']} valid, {report['invalid']} invalid)"]
    lines += [f"  line {p['line']}: {p['reason']}" for p in report["problems"][:20]]
    if len(report["problems"]) > 20:
        lines.append(f"  ... and {len(report['problems']) - 20} more")
    tokens = report.get("tokens")
    if tokens:
        lines.append(f"tokens ({tokens['tokenizer']}): total {tokens['total']:,}, min {tokens['min']}, "
                     f"mean {tokens['mean']}, p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
                     f"{tokens['over_max_seq_length']} over {tokens['max_seq_length']}")
    for number, text in enumerate(report.get("preview", []), start=1):
        lines += [f"--- row {number} as the model sees it ---", text]
    return "\n".join(lines)
