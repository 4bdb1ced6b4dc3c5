"""Probe conversations, and the prompt each side builds from one: transformers from the tokenizer's
chat template, Ollama from a Go template.

A probe is a conversation plus a thinking setting (unset, on, off). The sentinel probes have
contents that occur nowhere in a template, so that what a template writes around each message
can be read off; the plain probes have ordinary text (several lines, punctuation), so that a
template that changes the content (trims it, say) shows up.
"""

from dataclasses import dataclass

from backpropagate.ollama import gotemplate
from backpropagate.contract.chat_template import HfTemplate

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one sentence."}
U1 = {"role": "user", "content": "What do bees make?"}
A1 = {"role": "assistant", "content": "Honey, from nectar.\nThey store it in wax combs."}
U2 = {"role": "user", "content": "And wasps?"}
PREFIX = {"role": "assistant", "content": "Wasps make"}

# Conversations both renderings must agree on: with and without a system message, several
# turns, a question awaiting an answer, and an answer the model is to continue.
PROBES: dict[str, list[dict]] = {
    "one question": [U1],
    "system and question": [SYSTEM, U1],
    "system, several turns": [SYSTEM, U1, A1, U2],
    "continue an answer": [U1, A1, U2, PREFIX],
    "system, continue an answer": [SYSTEM, U1, A1, U2, PREFIX],
}


def message(role: str, content: str) -> dict:
    return {"role": role, "content": content}


# Sentinels: lowercase letters only, so that no template's filters (trim, title-case checks) touch them.
S = message("system", "qqsystemqq")
SU = [message("user", f"qquser{n}qq") for n in (1, 2, 3)]
SA = [message("assistant", f"qqanswer{n}qq") for n in (1, 2, 3)]

SENTINEL_PROBES: dict[str, list[dict]] = {
    "one turn": [SU[0]],
    "two turns": [SU[0], SA[0], SU[1]],
    "three turns": [SU[0], SA[0], SU[1], SA[1], SU[2]],
    "continue": [SU[0], SA[0], SU[1], SA[1]],
    "system, one turn": [S, SU[0]],
    "system, two turns": [S, SU[0], SA[0], SU[1]],
    "system, three turns": [S, SU[0], SA[0], SU[1], SA[1], SU[2]],
    "system, continue": [S, SU[0], SA[0], SU[1], SA[1]],
}

# An earlier answer with its reasoning: templates of reasoning models drop it (DeepSeek-R1, Qwen3);
# Ollama passes it as the message's Thinking, apart from its Content.
REASONING = {"role": "assistant", "content": "<think>\nqqreasonqq\n</think>qqanswer1qq",
             "ollama_content": "qqanswer1qq", "thinking": "qqreasonqq"}
REASONING_PROBE = [SU[0], REASONING, SU[1]]
# An answer being continued after its reasoning: transformers passes it as reasoning_content.
CONTINUE_AFTER_REASONING = [SU[0], SA[0], SU[1], {"role": "assistant", "content": "qqanswer2qq",
                                                  "reasoning_content": "qqreasonqq", "thinking": "qqreasonqq"}]


@dataclass(frozen=True)
class Probe:
    name: str
    messages: list[dict]
    think: bool | None = None  # Ollama's `think` option; the template's enable_thinking / thinking
    plain: bool = False  # ordinary text, not sentinels: a difference only here depends on the content


def render_hf(hf: HfTemplate, messages: list[dict], think: bool | None = None) -> str:
    """The prompt transformers would build: a generation prompt after a user turn, a continuation after an
    assistant turn; less the BOS text that llama.cpp adds as a token."""
    final_assistant = messages[-1]["role"] == "assistant"
    extra = {} if think is None else {"enable_thinking": think, "thinking": think}
    plain = [{key: m[key] for key in ("role", "content", "reasoning_content") if key in m} for m in messages]
    return hf.without_bos(hf.render(plain, add_generation_prompt=not final_assistant,
                                    continue_final_message=final_assistant, **extra))


def ollama_values(messages: list[dict], system: str = "", think: bool | None = None) -> dict:
    """What Ollama passes a chat template: system messages collated into System, all messages in Messages."""
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}] + messages
    collated: list[dict] = []
    for item in messages:  # Ollama merges consecutive messages of one role
        content = item.get("ollama_content", item["content"])
        if collated and collated[-1]["Role"] == item["role"]:
            collated[-1]["Content"] += "\n\n" + content
        else:
            collated.append({"Role": item["role"], "Content": content, "Thinking": item.get("thinking", "")})
    system_text = "\n\n".join(m["Content"] for m in collated if m["Role"] == "system")
    return {"System": system_text, "Prompt": "", "Response": "", "Messages": collated,
            "Think": bool(think), "IsThinkSet": think is not None}


def render_ollama(template: str, messages: list[dict], system: str = "", think: bool | None = None) -> str:
    """The prompt Ollama builds from ``template`` for a chat request (``system``: the model's SYSTEM)."""
    return gotemplate.render(template, ollama_values(messages, system, think))
