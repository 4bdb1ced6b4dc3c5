"""A `backprop ... --json` command in a child process, for a page that shows its result: the UI never imports the
ML stack itself, and a library's slow start or crash stays in the child."""

import json
import subprocess
import sys

from backpropagate.contract.redact import redact


def cli_result(arguments: list[str], timeout_s: float, slow: str) -> dict:
    """The command's ``--json`` result, or ``{"error": ...}`` with its coded error, its last line, or why it
    took too long (``slow`` says what it was doing)."""
    command = [sys.executable, "-m", "backpropagate", *arguments, "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"it took over {timeout_s:g} s ({slow})"}
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
    return {"error": tail[-1] if tail else f"{arguments[0]} exited with {done.returncode}"}
