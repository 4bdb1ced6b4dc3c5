"""Chat with a run's exported GGUF in the browser: `backprop chat RUN --prompt ... --json` in a child process
(llama.cpp, the GGUF's own template, greedy), each piece it prints passed on as a server-sent event.

One generation at a time for the whole UI: a model in memory per question is what a small machine can give.
A closed page ends its generation (the child is killed), so nobody waits behind an answer no one reads.
"""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from backpropagate.contract.redact import redact

MAX_TOKENS = 512  # the most one answer may take, whatever the form says
DEFAULT_TOKENS = 128
MAX_PROMPT_CHARS = 4000


def max_tokens_of(text: str) -> int:
    return min(MAX_TOKENS, max(1, int(text))) if text.strip().isdigit() else DEFAULT_TOKENS


def message(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def answer(run_id: str, workspace: Path, prompt: str, max_tokens: int, lock: asyncio.Lock) -> AsyncIterator[str]:
    """``token`` messages as the answer grows, then ``done`` (the CLI's result) or ``failure`` (its coded error)."""
    async with lock:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "backpropagate", "chat", run_id, f"--prompt={prompt}", f"--max-tokens={max_tokens}",
            f"--output={workspace}", "--json", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"}, cwd=workspace)
        ended = False
        try:
            async for line in process.stdout:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(data.get("token"), str):
                    yield message("token", data["token"])
                elif isinstance(data.get("result"), dict):
                    ended = True
                    yield message("done", data["result"])
                elif isinstance(data.get("error"), dict):
                    ended = True
                    error = data["error"]
                    yield message("failure", f"[{error['code']}]: {error['message']} (fix: {error['fix']})")
            await process.wait()
            if not ended:  # a crash before the CLI could report: its last line, without secrets
                tail = redact((await process.stderr.read()).decode("utf-8", "replace")).strip().splitlines()
                yield message("failure", tail[-1] if tail else f"chat exited with {process.returncode}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
