"""The Ollama Go template and stop tokens built from a chat template's pieces (``readoff.Pieces``).

The template walks ``.Messages`` as Ollama's library templates do: system messages are skipped
there and ``.System`` (Ollama's collation of them, the Modelfile's SYSTEM included) is written
where the tokenizer's template puts a system message; a final assistant message is left open
for the model to continue; thinking, where the template writes something different for it, is
chosen by Ollama's ``think`` option (``.IsThinkSet``, ``.Think``). Tool calls are left out.
"""

from backpropagate.ollama.readoff import SPECIAL, Pieces

LAST = "{{ $last := eq (len (slice $.Messages $i)) 1 }}"


def build(p: Pieces, on: Pieces | None = None, off: Pieces | None = None) -> str:
    """The Go template; with ``on`` and ``off`` (the pieces with thinking on and off, where they differ in
    more than the generation prompt) one for each, chosen by Ollama's think option."""
    if on is None or off is None:
        return _build(p)
    default, with_on, with_off = _build(p), _build(on), _build(off)
    if default == with_on:
        return "{{- if and $.IsThinkSet (not $.Think) }}" + with_off + "{{ else }}" + with_on + "{{ end }}"
    if default == with_off:
        return "{{- if and $.IsThinkSet $.Think }}" + with_on + "{{ else }}" + with_off + "{{ end }}"
    return ("{{- if $.IsThinkSet }}{{ if $.Think }}" + with_on + "{{ else }}" + with_off + "{{ end }}"
            "{{ else }}" + default + "{{ end }}")


def _build(p: Pieces) -> str:
    """The template for one thinking setting; the short form of Ollama's library when the system block
    stands apart."""
    up = p.user_prefix
    apart = (p.system == "first" and p.first_user.endswith(up) and p.system_close.endswith(up))
    if apart:
        default = _text(p.first_user[:len(p.first_user) - len(up)])
        head = ("{{- if .System }}" + _text(p.system_first) + "{{ .System }}"
                + _text(p.system_close[:len(p.system_close) - len(up)])
                + ("{{ else }}" + default if default else "") + "{{ end }}")
        user_open = _text(up)
    else:
        head = ""
        user_open = _user_open(p)
    if p.system == "last":
        # The index of the last user message, for the template that merges the system message there.
        head += '{{- $lastUser := -1 }}{{ range $i, $_ := .Messages }}{{ if eq .Role "user" }}' \
                "{{ $lastUser = $i }}{{ end }}{{ end }}"
    first = "" if apart else "{{- $firstUser := true }}"
    generation = _generation(p)
    return (head + first + "{{- range $i, $_ := .Messages }}" + LAST
            + '{{ if eq .Role "user" }}' + user_open + "{{ .Content }}" + _text(p.user_suffix)
            + ("{{ if $last }}" + generation + "{{ end }}" if generation else "")
            + ("" if apart else "{{ $firstUser = false }}")
            + '{{ else if eq .Role "assistant" }}{{ if $last }}' + _final_prefix(p) + "{{ .Content }}"
            + "{{ else }}" + _text(p.assistant_prefix) + "{{ .Content }}" + _text(p.assistant_suffix)
            + "{{ end }}{{ end }}{{ end }}")


def _user_open(p: Pieces) -> str:
    """What opens a user message: the system message with it where it goes there, else the plain prefix."""
    plain = _choice("$firstUser", _text(p.first_user), _text(p.user_prefix))
    if p.system in ("first", "refused"):
        opening = _text(p.system_first)
        condition = "and $.System $firstUser"
    else:
        opening = _choice("$firstUser", _text(p.system_first), _text(p.system_later))
        condition = "and $.System (eq $i $lastUser)" if p.system == "last" else "and $.System $last"
    return "{{ if " + condition + " }}" + opening + "{{ $.System }}" + _text(p.system_close) + \
        "{{ else }}" + plain + "{{ end }}"


def _final_prefix(p: Pieces) -> str:
    """What opens an answer being continued: its reasoning, where the template writes it, in the form that
    tells Ollama the model thinks (its thinking tags are the text around ``.Thinking`` in the messages)."""
    if not p.reasoning_open:
        return _text(p.final_prefix)
    return (_text(p.reasoning_head) + "{{ if .Thinking }}" + _text(p.reasoning_open) + "{{ .Thinking }}"
            + _text(p.reasoning_close) + "{{ else }}" + _text(p.final_prefix[len(p.reasoning_head):]) + "{{ end }}")


def _choice(condition: str, then: str, otherwise: str) -> str:
    return then if then == otherwise else "{{ if " + condition + " }}" + then + "{{ else }}" + otherwise + "{{ end }}"


def _generation(p: Pieces) -> str:
    default, on, off = p.generation, p.generation_on, p.generation_off
    if default == on == off:
        return _text(default)
    if default == on:
        return "{{ if and $.IsThinkSet (not $.Think) }}" + _text(off) + "{{ else }}" + _text(on) + "{{ end }}"
    if default == off:
        return "{{ if and $.IsThinkSet $.Think }}" + _text(on) + "{{ else }}" + _text(off) + "{{ end }}"
    return ("{{ if $.IsThinkSet }}{{ if $.Think }}" + _text(on) + "{{ else }}" + _text(off) + "{{ end }}"
            "{{ else }}" + _text(default) + "{{ end }}")


def thinks(p: Pieces, on: Pieces | None = None) -> bool:
    """Whether the template follows Ollama's think option."""
    return on is not None or not p.generation == p.generation_on == p.generation_off


def reasons(p: Pieces) -> bool:
    """Whether the template writes the reasoning of an answer (Ollama then takes the model as thinking)."""
    return bool(p.reasoning_open)


def own_tokens(p: Pieces) -> list[str]:
    """Special tokens of an answer's header that the model writes itself, after the generation prompt
    (gpt-oss: ``<|channel|>final<|message|>``); reasoning markers aside."""
    rest = p.assistant_prefix[len(p.generation):] if p.assistant_prefix.startswith(p.generation) else ""
    return [token for token in SPECIAL.findall(rest) if "think" not in token]


def stops(p: Pieces, eos: str) -> tuple[str, ...]:
    """What ends an assistant turn: the special tokens of the assistant suffix, the tokenizer's end of
    sequence, and those that open or close the other turns (a model that writes them has ended its own).
    Not a token the model writes inside its own answer."""
    found: list[str] = []
    own = own_tokens(p)
    pieces = ((p.assistant_suffix, True), (eos, None), (p.user_prefix, True), (p.user_suffix, False),
              (p.assistant_prefix, False))
    for text, plain_too in pieces:
        tokens = [text] if plain_too is None else SPECIAL.findall(text)
        # Without special tokens, the text itself ("USER:") where it ends a turn or opens the next.
        for token in tokens or ([text.strip()] if plain_too else []):
            # Reasoning markers are the model's own output, never the end of its turn.
            if token and token not in found and "think" not in token and (token not in own or text is eos):
                found.append(token)
    return tuple(found)


def _text(text: str) -> str:
    """Literal text in a Go template: ``{{`` is written as an action printing it."""
    return '{{ "{{" }}'.join(text.split("{{"))
