"""Rendering a Hugging Face chat template as transformers does, with jinja2 and without transformers.

Same environment as ``transformers``' ``apply_chat_template``: a sandboxed jinja2
environment with ``trim_blocks``/``lstrip_blocks`` and loop controls, a ``tojson``
filter, ``raise_exception`` and ``strftime_now`` globals, the special tokens as
variables, and ``continue_final_message`` cutting the prompt right after the last
message so that the model continues it.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime


class TemplateRaised(Exception):
    """The template called raise_exception: it refuses this conversation (a system message, say)."""


@dataclass(frozen=True)
class HfTemplate:
    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ...

    def render(self, messages: list[dict], add_generation_prompt: bool = False,
               continue_final_message: bool = False, **variables) -> str:
        """``variables``: the template's own keyword arguments (``enable_thinking``, say), as
        ``apply_chat_template`` passes them."""
        from jinja2 import TemplateError

        try:
            text = _compiled(self.source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                 **self.special_tokens, **variables)
        except TemplateRaised:
            raise
        except (TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # A published template is foreign code: any failure means it cannot render this conversation.
            raise TemplateRaised(str(exc)) from None
        if continue_final_message:
            text = _cut_after_final_message(text, messages[-1]["content"])
        return text

    def without_bos(self, text: str) -> str:
        """The prompt less a leading BOS text: llama.cpp and Ollama add the BOS token themselves."""
        bos = self.special_tokens.get("bos_token", "")
        return text[len(bos):] if bos and text.startswith(bos) else text


_CACHE: dict[str, object] = {}


def _compiled(source: str):
    if source not in _CACHE:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[loopcontrols, _generation_tag()])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        _CACHE[source] = env.from_string(source)
    return _CACHE[source]


def _generation_tag():
    """``{% generation %}`` (training templates mark the assistant's tokens with it) renders its body as is."""
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    return Generation


def _raise(message: str):
    raise TemplateRaised(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _cut_after_final_message(text: str, final: str) -> str:
    """transformers' continue_final_message: keep the prompt up to the end of the final message."""
    if final.strip() not in text:
        raise TemplateRaised("the final message does not appear in the rendered prompt")
    start = text.rindex(final.strip())
    if text[start:start + len(final.lstrip())] == final:
        return text[:start + len(final.lstrip())]
    return text[:start + len(final.strip())]
