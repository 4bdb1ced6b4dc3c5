"""Rendering a Hugging Face chat template as transformers does, with jinja2 and without transformers.

Same environment as ``transformers``' ``apply_chat_template``: a sandboxed jinja2
environment with ``trim_blocks``/``lstrip_blocks`` and loop controls, a ``tojson``
filter, ``raise_exception`` and ``strftime_now`` globals, the special tokens as
variables, and ``continue_final_message`` cutting the prompt right after the last
message so that the model continues it.

A template is foreign code, so each rendering is bounded: every loop step counts against
MAX_LOOP_STEPS and the clock against MAX_RENDER_S, and ``*`` and ``**`` may not build values
past MAX_VALUE_ITEMS items or MAX_POWER_BITS bits. A template past a bound raises
INPUT_CHAT_TEMPLATE_RUNAWAY naming the template, instead of hanging its caller.
"""

import contextvars
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from backpropagate.contract.errors import BackpropError

# Real templates loop over messages, tools and their fields: thousands of steps for the longest
# conversations. 10^6 steps render in about a second; 10 s is the bound whatever each step costs.
MAX_LOOP_STEPS = 1_000_000
MAX_RENDER_S = 10.0
MAX_VALUE_ITEMS = 1_000_000  # "text" * n and [..] * n
MAX_POWER_BITS = 65_536  # a ** b on integers


class TemplateRaised(Exception):
    """The template called raise_exception: it refuses this conversation (a system message, say)."""


class _Runaway(Exception):
    """The template went past a bound; rendering stops where it is."""


@dataclass(frozen=True)
class HfTemplate:
    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ...
    origin: str = "the chat template"  # where the template was read, for messages

    def render(self, messages: list[dict], add_generation_prompt: bool = False,
               continue_final_message: bool = False, **variables) -> str:
        """``variables``: the template's own keyword arguments (``enable_thinking``, say), as
        ``apply_chat_template`` passes them."""
        from jinja2 import TemplateError

        budget = _BUDGET.set(_Budget())
        try:
            text = _compiled(self.source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                 **self.special_tokens, **variables)
        except TemplateRaised:
            raise
        except _Runaway as exc:
            raise runaway(self.origin, str(exc)) from None
        except RecursionError:
            raise runaway(self.origin, "it calls itself without end (a macro or a recursive loop)") from None
        except (TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # A published template is foreign code: any failure means it cannot render this conversation.
            raise TemplateRaised(str(exc)) from None
        finally:
            _BUDGET.reset(budget)
        if continue_final_message:
            text = _cut_after_final_message(text, messages[-1]["content"])
        return text

    def without_bos(self, text: str) -> str:
        """The prompt less a leading BOS text: llama.cpp and Ollama add the BOS token themselves."""
        bos = self.special_tokens.get("bos_token", "")
        return text[len(bos):] if bos and text.startswith(bos) else text


def bounded_apply(tokenizer, conversation: list[dict], add_generation_prompt: bool = False) -> str:
    """transformers' ``apply_chat_template(tokenize=False)``, once the same rendering has ended within the bounds.

    transformers' own sandbox bounds nothing, so the conversation is rendered here first; a template that
    refuses it is left for transformers to refuse in its own words.
    """
    specials = {k: v for k, v in getattr(tokenizer, "special_tokens_map", {}).items() if isinstance(v, str)}
    origin = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    try:
        HfTemplate(tokenizer.chat_template, specials, origin).render(conversation,
                                                                    add_generation_prompt=add_generation_prompt)
    except TemplateRaised:
        pass
    return tokenizer.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt, tokenize=False)


def runaway(origin: str, reason: str) -> BackpropError:
    return BackpropError("INPUT_CHAT_TEMPLATE_RUNAWAY", template=origin, reason=reason)


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_RENDER_S

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise _Runaway(f"its loops ran past {MAX_LOOP_STEPS:,} steps")
        if self.steps % 1024 == 0 and time.monotonic() > self.deadline:
            raise _Runaway(f"it rendered for more than {MAX_RENDER_S:g}s")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("template_budget")


def _counted(iterable):
    """What a template's for loop walks, one budget step per item."""
    budget = _BUDGET.get()
    for item in iterable:
        budget.step()
        yield item


_CACHE: dict[str, object] = {}


def _compiled(source: str):
    if source not in _CACHE:
        from jinja2 import nodes
        from jinja2.ext import loopcontrols

        env = _bounded_environment()(trim_blocks=True, lstrip_blocks=True,
                                     extensions=[loopcontrols, _generation_tag()])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        env.globals["_counted"] = _counted
        tree = env.parse(source)
        for loop in tree.find_all(nodes.For):  # every loop walks its items through _counted
            loop.iter = nodes.Call(nodes.Name("_counted", "load", lineno=loop.lineno), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        _CACHE[source] = env.from_string(tree)
    return _CACHE[source]


def _bounded_environment():
    """transformers' sandbox, with ``*`` and ``**`` checked before they build a value."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                for items, times in ((left, right), (right, left)):
                    if isinstance(items, (str, list, tuple)) and isinstance(times, int) \
                            and len(items) * times > MAX_VALUE_ITEMS:
                        raise _Runaway(f"it multiplies a value past {MAX_VALUE_ITEMS:,} items")
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                    and right * abs(left).bit_length() > MAX_POWER_BITS:
                raise _Runaway(f"it raises a number past {MAX_POWER_BITS:,} bits")
            return super().call_binop(context, operator, left, right)

    return Bounded


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
