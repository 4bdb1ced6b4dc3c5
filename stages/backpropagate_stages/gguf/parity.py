"""Tokenizer parity: llama.cpp must turn every text into the ids the model's own tokenizer gives.

Checked on the run's data and on a fixed corpus of strings that break tokenizers: many scripts, emoji with
joiners and modifiers, code, runs of spaces, tabs and newlines, and control-token text inside messages. Both
sides follow the rule of chat_tokens.py: the template's text is read with special tokens on, message text
with them off.
"""

from backpropagate_stages.chat_tokens import Segment, encode, hf_tokenize, render_segments

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


def mismatches(cases: list[list[Segment]], tokenizer, llm) -> list[str]:
    """The texts of the cases that llama.cpp tokenizes differently from ``tokenizer``."""
    def theirs(text: str, special: bool) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=False, special=special)

    ours = hf_tokenize(tokenizer)
    return ["".join(segment.text for segment in case) for case in cases
            if encode(case, ours)[0] != encode(case, theirs)[0]]
