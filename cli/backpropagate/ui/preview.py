"""A dataset as the chosen model will see it: `backprop validate --tokenizer MODEL --preview N` in a child
process (so the UI never imports transformers), its first rows rendered by the model's chat template and
its token-length histogram."""

import json
import subprocess
import sys
from pathlib import Path

from backpropagate.contract.redact import redact

PREVIEW_ROWS = 3
TIMEOUT_S = 300  # a hub tokenizer may have to be fetched first


def preview(data: Path, model: str, max_seq_length: int) -> dict:
    """validate's --json report (rows, tokens with histogram, preview), or ``{"error": ...}`` with its coded error."""
    command = [sys.executable, "-m", "backpropagate", "validate", f"--data={data}", f"--tokenizer={model}",
               f"--max-seq-length={max_seq_length}", f"--preview={PREVIEW_ROWS}", "--skip-invalid", "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"the preview took over {TIMEOUT_S} s (loading the tokenizer of {model})"}
    for line in reversed(done.stdout.splitlines()):
        try:
            outcome = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(outcome, dict) and isinstance(outcome.get("result"), dict):
            return outcome["result"]
        if isinstance(outcome, dict) and isinstance(outcome.get("error"), dict):
            error = outcome["error"]
            return {"error": f"[{error['code']}]: {error['message']} (fix: {error['fix']})"}
    tail = redact(done.stderr).strip().splitlines()  # a library's line may hold a token
    return {"error": tail[-1] if tail else f"validate exited with {done.returncode}"}


def bars(histogram: list[dict]) -> list[dict]:
    """Each bin with its bar's width in percent of the tallest."""
    tallest = max((b["count"] for b in histogram), default=0) or 1
    return [{**b, "percent": round(100 * b["count"] / tallest, 1)} for b in histogram]
