"""`backprop chat`: talk to an exported GGUF through llama.cpp, with the model's own chat template."""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop chat 3f2a --prompt "What is the capital of France?"

  backprop chat output/3f2a.../gguf/model-q4_k_m.gguf

  backprop chat 3f2a --prompt "Hi" --json   # one {"token": ...} line per piece as it is generated, then the result
"""


def chat(
    target: Annotated[str, typer.Argument(help="Run id or prefix (its exported GGUF), or a .gguf file.")],
    prompt: Annotated[str | None, typer.Option(help="Ask once and print the answer; without it, chat until "
                                                    "an empty line or Ctrl-D.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message to start the conversation.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 256,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Chat with an exported model (llama.cpp, the GGUF's embedded chat template, greedy decoding)."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    if settings.log_json and prompt is None:
        raise BackpropError("CONFIG_CHAT_JSON_NEEDS_PROMPT")
    gguf = _gguf_file(target, output_dir(settings))
    llm = _load(gguf)
    messages = [{"role": "system", "content": system}] if system else []
    try:
        if prompt is not None and settings.log_json:
            answer, finish = _answer(llm, messages + [{"role": "user", "content": prompt}], max_tokens, _print_piece)
            Output(json_mode=True).result(answer, {"answer": answer, "finish_reason": finish, "gguf": str(gguf),
                                                   "max_tokens": max_tokens})
            return
        if prompt is not None:
            print(_answer(llm, messages + [{"role": "user", "content": prompt}], max_tokens)[0])
            return
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                break
            messages.append({"role": "user", "content": line})
            reply, _ = _answer(llm, messages, max_tokens)
            messages.append({"role": "assistant", "content": reply})
            print(f"model> {reply}")
    finally:
        llm.close()


def _print_piece(piece: str) -> None:
    """Each piece as it comes, for a caller that shows the answer growing (the web UI's chat)."""
    print(json.dumps({"token": piece}), flush=True)


def _gguf_file(target: str, output: Path) -> Path:
    path = Path(target).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise BackpropError("INPUT_GGUF_NOT_FOUND", target=target, output=output)
        return path
    found = RunFolder.of(output, RunHistory(output).find(target).run_id).exported_gguf()
    if found is None:
        raise BackpropError("INPUT_GGUF_NOT_FOUND", target=target, output=output)
    return found


def _load(path: Path):
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise BackpropError("DEP_LLAMA_CPP_MISSING", reason=f"llama_cpp does not import ({exc})") from None
    try:
        llm = Llama(model_path=str(path), n_ctx=2048, verbose=False)
    except ValueError as exc:  # llama.cpp's "Failed to load model from file"
        raise BackpropError("INPUT_GGUF_INVALID", path=path, reason=str(exc).split(":")[0].lower()) from None
    # Without an embedded template llama-cpp-python silently uses a generic one: the commonest
    # cause of gibberish after export. Refuse instead.
    if "tokenizer.chat_template" not in llm.metadata:
        llm.close()
        raise BackpropError("INPUT_GGUF_NO_TEMPLATE", path=path)
    return llm


def _answer(llm, messages: list[dict], max_tokens: int,
            on_piece: Callable[[str], None] = lambda piece: None) -> tuple[str, str | None]:
    """The reply (stripped) and why it ended; each piece goes to ``on_piece`` as llama.cpp generates it."""
    pieces, finish = [], None
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, stream=True):
        choice = chunk["choices"][0]
        piece = choice["delta"].get("content")
        if piece:
            pieces.append(piece)
            on_piece(piece)
        finish = choice.get("finish_reason") or finish
    if finish == "length":
        # A model that never emits its end-of-turn token is the classic broken export; say so.
        print(f"(the answer was cut at --max-tokens {max_tokens}: the model did not end its turn)", file=sys.stderr)
    return "".join(pieces).strip(), finish
