"""Tokenizer parity: llama.cpp must turn every text into the ids the model's own tokenizer gives.

Checked on the run's data and on a fixed corpus of strings that break tokenizers: many scripts, emoji with
joiners and modifiers, code, runs of spaces, tabs and newlines, and control-token text inside messages. Both
sides follow the rule of chat_tokens.py: the template's text is read with special tokens on, message text
with them off.
"""

import re

from backpropagate.contract import gguf_header as header

from backpropagate_stages.chat_tokens import Segment, encode, hf_tokenize, render_segments

CONTROL = 3  # llama.cpp's token type for control tokens

HARD_STRINGS = [
    "Grüße aus Köln: naïve café, déjà vu, Œuvre, ß.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Καλημέρα κόσμε· ἀρχή.",
    "日本語のテキスト、漢字とカタカナ。東京タワー",
    "中文：你好，世界！简体與繁體。",
    "안녕하세요, 세계. 한국어 문장입니다.",
    "مرحبا بالعالم، هذه جملة عربية.",
    "שלום עולם, זה משפט בעברית.",
    "नमस्ते दुनिया, यह हिंदी है।",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Emoji: 👋🏽 👨‍👩‍👧‍👦 🇫🇷 ✅🔥💯 ❤️ 🫠",
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # πr²\n\n\tif x >= 10 and y != 0: print(f\"{x!r}\")",
    "const x = {a: [1, 2, 3], 'b': \"c\"}; // JS\nSELECT * FROM t WHERE id = 42;",
    "    four leading spaces, two trailing  ",
    "a  b   c    d     e\t\tf \t g",
    "\n\n\nthree newlines\n \n\t\n\r\nwindows line\r\n",
    "1234567890 3.14159 1e-10 0x1F 1,000,000.00 2024-07-26",
    "https://example.com/path?q=1&x=%20y#frag **bold** `code` [link](url)",
    "<|im_end|> <|im_start|>user\nfake turn<|im_end|>",
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nfake reply<|eot_id|>",
    "<think>not real reasoning</think> <s></s> [INST] </s>",
    "don't we'll they're I'M 'quoted' \"double\" «guillemets» „Anführung“",
    "zero\u200bwidth, no\u00a0break, soft\u00adhyphen",
]


def parity_cases(tokenizer, conversations: list[list[Segment]]) -> list[list[Segment]]:
    """What both tokenizers must agree on: the run's own data, each hard string alone (as data text), and a
    conversation that carries every hard string as a message."""
    cases = list(conversations)
    cases += [[Segment(text, special=False)] for text in HARD_STRINGS]
    if tokenizer.chat_template is not None:
        messages = []
        for i, text in enumerate(HARD_STRINGS):
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": f"Reply {i}."}]
        cases.append(render_segments(messages, tokenizer))
    return cases


def llama_cpp_rules(gguf_path, llm) -> list[str]:
    """Tokens llama.cpp makes control tokens as it loads a model, whatever the file says.

    It knows some end-of-generation spellings by heart ("</s>", "<eos>", "<|endoftext|>", ...). Where the model's
    tokenizer keeps such a token as plain text (Gemma 3's "</s>"), llama.cpp splits it in message text, and no
    GGUF can change that: the comparison leaves those stretches out, and the stage says so.
    """
    from backpropagate_stages.gguf.llama_tools import llama_cpp

    module = llama_cpp()
    vocab = module.llama_model_get_vocab(llm.model)
    types = header.read(gguf_path, ("tokenizer.ggml.token_type",))["tokenizer.ggml.token_type"] or []
    return [llm.detokenize([i], special=True).decode("utf-8", "replace") for i, kind in enumerate(types)
            if kind != CONTROL and module.llama_vocab_get_attr(vocab, i) & module.LLAMA_TOKEN_ATTR_CONTROL]


def mismatches(cases: list[list[Segment]], tokenizer, llm, rules: list[str] = ()) -> list[list[Segment]]:
    """The cases that llama.cpp tokenizes differently from ``tokenizer``, around the texts in ``rules``."""
    ours, theirs = _around(hf_tokenize(tokenizer), rules), _around(_llama_tokenize(llm), rules)
    return [case for case in cases if encode(case, ours)[0] != encode(case, theirs)[0]]


def first_difference(case: list[Segment], tokenizer, llm, rules: list[str] = (), most: int = 12) -> str:
    """Where the two tokenizers part ways in ``case``: the text, and the tokens each side made of it."""
    ours, theirs = _around(hf_tokenize(tokenizer), rules), _around(_llama_tokenize(llm), rules)
    a = b = []
    for segment in case:  # segments are tokenized alone, so the first differing one holds the difference
        a, b = ours(segment.text, segment.special), theirs(segment.text, segment.special)
        if a != b:
            break
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    # Widen each side token by token until both cover the same text, so the two lists show one stretch.
    ours_end, theirs_end = start + 1, start + 1
    while ours_end <= len(a) and theirs_end <= len(b) and max(ours_end, theirs_end) - start < most:
        covered_ours = len(tokenizer.decode([i for i in a[:ours_end] if i >= 0]))
        covered_theirs = len(llm.detokenize([i for i in b[:theirs_end] if i >= 0], special=True).decode(
            "utf-8", "replace"))
        if covered_ours == covered_theirs:
            break
        if covered_ours < covered_theirs:
            ours_end += 1
        else:
            theirs_end += 1
    mine = [tokenizer.decode([i]) for i in a[start:ours_end] if i >= 0]
    other = [llm.detokenize([i], special=True).decode("utf-8", "replace") for i in b[start:theirs_end] if i >= 0]
    return (f"{''.join(mine)!r} is {_count(mine)} for the model's tokenizer {mine} "
            f"and {_count(other)} for llama.cpp {other}")


def _around(tokenize, rules: list[str]):
    """``tokenize`` that, in message text, leaves out the texts in ``rules`` and tokenizes what lies between
    them alone (a -1 marks each cut, so pieces cannot pair up differently)."""
    if not rules:
        return tokenize
    pattern = re.compile("|".join(re.escape(text) for text in sorted(rules, key=len, reverse=True)))

    def around(text: str, special: bool) -> list[int]:
        if special:
            return tokenize(text, special)
        pieces = pattern.split(text)
        return [i for n, piece in enumerate(pieces) for i in ([-1] if n else []) + tokenize(piece, special)]

    return around


def _count(pieces: list[str]) -> str:
    return "1 token" if len(pieces) == 1 else f"{len(pieces)} tokens"


def _llama_tokenize(llm):
    return lambda text, special: llm.tokenize(text.encode(), add_bos=False, special=special)
