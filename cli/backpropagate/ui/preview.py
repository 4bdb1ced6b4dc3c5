"""A dataset as the chosen model will see it: `backprop validate --tokenizer MODEL --preview N` in a child
process (so the UI never imports transformers), its first rows rendered by the model's chat template and
its token-length histogram."""

from pathlib import Path

from backpropagate.ui.child import cli_result

PREVIEW_ROWS = 3
TIMEOUT_S = 300  # a hub tokenizer may have to be fetched first


def preview(data: Path, model: str, max_seq_length: int) -> dict:
    """validate's --json report (rows, tokens with histogram, preview), or ``{"error": ...}`` with its coded error."""
    return cli_result(["validate", f"--data={data}", f"--tokenizer={model}", f"--max-seq-length={max_seq_length}",
                       f"--preview={PREVIEW_ROWS}", "--skip-invalid"], TIMEOUT_S, f"loading the tokenizer of {model}")


def bars(histogram: list[dict]) -> list[dict]:
    """Each bin with its bar's width in percent of the tallest."""
    tallest = max((b["count"] for b in histogram), default=0) or 1
    return [{**b, "percent": round(100 * b["count"] / tallest, 1)} for b in histogram]
