"""`backprop chat`: talk to an exported GGUF through llama.cpp, with the model's own chat template."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder

EXAMPLES = """
Examples:

  backprop chat 3f2a --prompt "What is the capital of France?"

  backprop chat output/3f2a.../gguf/model-q4_k_m.gguf
"""


def chat(
    target: Annotated[str, typer.Argument(help="Run id or prefix (its exported GGUF), or a .gguf file.")],
    prompt: Annotated[str | None, typer.Option(help="Ask once and print the answer; without it, chat until "
                                                    "an empty line or Ctrl-D.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message to start the conversation.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 256,
    output: OutputOpt = None,
) -> None:
    """Chat with an exported model (llama.cpp, the GGUF's embedded chat template, greedy decoding)."""
    settings = load_settings(overrides={"output": str(output) if output else None})
    llm = _load(_gguf_file(target, output_dir(settings)))
    messages = [{"role": "system", "content": system}] if system else []
    try:
        if prompt is not None:
            print(_answer(llm, messages + [{"role": "user", "content": prompt}], max_tokens))
            return
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                break
            messages.append({"role": "user", "content": line})
            reply = _answer(llm, messages, max_tokens)
            messages.append({"role": "assistant", "content": reply})
            print(f"model> {reply}")
    finally:
        llm.close()


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
    llm = Llama(model_path=str(path), n_ctx=2048, verbose=False)
    # Without an embedded template llama-cpp-python silently uses a generic one: the commonest
    # cause of gibberish after export. Refuse instead.
    if "tokenizer.chat_template" not in llm.metadata:
        llm.close()
        raise BackpropError("INPUT_GGUF_NO_TEMPLATE", path=path)
    return llm


def _answer(llm, messages: list[dict], max_tokens: int) -> str:
    reply = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
    choice = reply["choices"][0]
    if choice["finish_reason"] == "length":
        # A model that never emits its end-of-turn token is the classic broken export; say so.
        print(f"(the answer was cut at --max-tokens {max_tokens}: the model did not end its turn)", file=sys.stderr)
    return choice["message"]["content"].strip()
