"""Build a tiny, real causal LM offline, for tests and the quickstart.

Generates English-like and ChatML text from a seed, trains a SentencePiece BPE tokenizer on it, builds a
2-layer Llama or Qwen2 model, pretrains it briefly, and saves a Hugging Face folder (safetensors, with
tokenizer.model for GGUF converters). The same arguments give the same bytes. Needs the `local` extra.

    python scripts/make_tiny_model.py --arch llama --out models/tiny-llama
    python scripts/make_tiny_model.py --arch qwen2 --out models/tiny-qwen2 --seed 1 --pretrain-steps 0

With --tokenizer the model is built around a real tokenizer instead (tiny_real_tokenizer.py): qwen3,
llama3, gemma3 or llama2 (fetched by fetch_tokenizers.py; Gemma 3's around a Llama architecture, Llama 2's with
Llama-2-chat's template), or any folder holding tokenizer.json and tokenizer_config.json, with --arch llama or
qwen3.

    python scripts/make_tiny_model.py --tokenizer qwen3 --out models/tiny-qwen3
    python scripts/make_tiny_model.py --tokenizer path/to/tokenizer-folder --arch llama --out models/tiny-mine
"""

import argparse
import io
import json
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

ARCHS = ("llama", "qwen2")
VOCAB_SIZE = 1024
MAX_POSITIONS = 2048
SEQ_LEN = 64
BATCH_SIZE = 8
DEFAULT_PRETRAIN_STEPS = 150
CHATML_TOKENS = ["<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

NOUNS = """cat dog bird fish horse sheep goat mouse fox wolf bear frog duck owl tiger lion rabbit tree flower river
lake sea hill mountain road bridge house garden field forest city town village school market table chair door window
book letter song story boat ship train wagon apple bread cheese milk water stone cloud storm island castle tower lamp
candle basket kettle blanket mirror pencil ladder bottle hammer rope shadow meadow valley harbor orchard""".split()
ADJECTIVES = """small big red blue green yellow old new quick slow happy sad quiet loud warm cold bright dark tall
short soft heavy light gentle brave clever lazy busy empty full round wooden golden silver strange friendly""".split()
VERBS = """sees likes finds makes holds carries paints watches follows visits builds cleans opens closes remembers
forgets chooses reaches""".split()
PLACES = ["near the river", "under the bridge", "in the garden", "on the hill", "behind the house",
          "at the market", "by the window", "across the field", "inside the castle", "beside the lake"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "grey"]
SYLLABLES = "ka lo mi ra ten sul dor bel fin gar vo ni pe tum zor ha li qua ro sen mar".split()
SYSTEM_PROMPTS = ["You are a helpful assistant.", "Be brief.", "Answer in one sentence."]


def make_names(rng: random.Random, count: int) -> list[str]:
    names = set()
    while len(names) < count:
        names.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize())
    return sorted(names)


def make_sentence(rng: random.Random, names: list[str]) -> str:
    subject = rng.choice(names) if rng.random() < 0.5 else f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    place = f" {rng.choice(PLACES)}" if rng.random() < 0.5 else ""
    return f"{subject} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}{place}."


def make_exchange(rng: random.Random, names: list[str], colors: dict[str, str]) -> tuple[str, str]:
    kind = rng.randrange(3)
    if kind == 0:
        noun = rng.choice(NOUNS)
        return f"What color is the {noun}?", f"The {noun} is {colors[noun]}."
    if kind == 1:
        a, b = rng.randint(0, 49), rng.randint(0, 49)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    name = rng.choice(names)
    return f"Who is {name}?", f"{name} is a {colors[name]} {rng.choice(NOUNS)}."


def render_chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def make_corpus(seed: int, sentences: int = 3000, chats: int = 1500, render=render_chatml) -> list[str]:
    """Plain paragraphs and conversations rendered by ``render`` (ChatML by default), one document per string."""
    rng = random.Random(seed)
    names = make_names(rng, 200)
    # A fixed answer per noun and name gives the model facts it can become sure of.
    colors = {key: rng.choice(COLORS) for key in NOUNS + names}
    docs = [" ".join(make_sentence(rng, names) for _ in range(rng.randint(1, 4))) for _ in range(sentences)]
    for _ in range(chats):
        messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 2)):
            question, answer = make_exchange(rng, names, colors)
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        docs.append(render(messages))
    rng.shuffle(docs)
    return docs


def train_sentencepiece(docs: list[str], seed: int) -> bytes:
    import sentencepiece as spm

    # The markers are control pieces and never learned from text; left in, they would spend merges on "|im".
    texts = [doc.replace(CHATML_TOKENS[0], "").replace(CHATML_TOKENS[1], "") for doc in docs]
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    # model_writer (not model_prefix) keeps file paths out of the proto, so its bytes depend only on the text.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
        byte_fallback=True, character_coverage=1.0, split_digits=True,
        # identity keeps "\n", which ChatML needs. No dummy prefix: no "▁" before text that follows a special token.
        # HF matches it through add_prefix_space=False, which the llama GGUF converter also reads; the qwen2 one
        # writes no add_space_prefix, and llama.cpp then assumes true for a SentencePiece vocab.
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        # Control, not user-defined: llama.cpp and Ollama read piece types from tokenizer.model, and only
        # control pieces become special tokens there.
        control_symbols=CHATML_TOKENS,
        num_threads=1, shuffle_input_sentence=False, minloglevel=2,
    )
    return model.getvalue()


def build_tokenizer(spm_model: bytes, arch: str):
    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "tokenizer.model").write_bytes(spm_model)
        # In transformers 5 only from_pretrained converts a tokenizer.model; the constructor given
        # vocab_file silently builds a near-empty vocabulary.
        tokenizer = LlamaTokenizer.from_pretrained(
            work, legacy=False, add_prefix_space=False, add_bos_token=False, add_eos_token=False,
            eos_token="<|im_end|>", pad_token="<pad>", model_max_length=MAX_POSITIONS)
    if arch == "qwen2":
        tokenizer = to_byte_level(tokenizer)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def to_byte_level(tokenizer):
    """The same vocabulary as a Qwen2Tokenizer, which transformers 5's AutoTokenizer forces on qwen2 models whatever
    tokenizer_class says, rebuilding a byte-level BPE from tokenizer.json's vocab and merges. Its ids match
    tokenizer.model's except where NFC changes the text or a word follows an apostrophe ('sand splits as 's+and)."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = bytes_to_unicode()

    def byte_level(piece: str) -> str:
        return "".join(byte_chars[b] for b in piece.replace("\u2581", " ").encode())

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    specials = set(tokenizer.all_special_tokens)
    vocab, byte_pieces = {}, {}
    for piece, i in model["vocab"].items():
        if match := re.fullmatch(r"<0x([0-9A-F]{2})>", piece):
            byte_pieces[piece] = (i, byte_chars[int(match[1], 16)])
        else:
            vocab[piece if piece in specials else byte_level(piece)] = i
    # A byte that is also a character piece keeps its old name: SentencePiece never emits that id either.
    for piece, (i, char) in byte_pieces.items():
        vocab[piece if char in vocab else char] = i
    merges = [(byte_level(a), byte_level(b)) for a, b in model["merges"]]
    return Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="<|im_end|>",
                          pad_token="<pad>", extra_special_tokens=["</s>", "<|im_start|>"], add_bos_token=False,
                          add_eos_token=False, model_max_length=MAX_POSITIONS)


def build_model(arch: str, tokenizer, seed: int):
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config_cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    # intermediate_size is a multiple of 256 so k-quant GGUF exports quantize for real.
    config = config_cls(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
                        tie_word_embeddings=False, **ids)
    with torch.random.fork_rng(devices=[]):  # seed the init without reseeding the caller's generator
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(**ids)
    return model


def pretrain(model, tokenizer, docs: list[str], steps: int, seed: int) -> float | None:
    """A few AdamW steps, so the next-token distribution is peaked rather than uniform."""
    import torch

    ids = [i for doc in tokenizer(docs, add_special_tokens=False)["input_ids"] for i in doc]
    blocks = torch.tensor(ids[: len(ids) // SEQ_LEN * SEQ_LEN]).view(-1, SEQ_LEN)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    threads, loss = torch.get_num_threads(), None
    # One thread: matrices this small gain little from more, and with another busy process on the machine the
    # threads' spin-waiting once stretched a 7 s build to 4 minutes. The bytes come out the same either way.
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(steps):
            batch = blocks[torch.randint(len(blocks), (BATCH_SIZE,), generator=generator)]
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return None if loss is None else loss.item()


def save(model, tokenizer, spm_model: bytes, folder: Path) -> None:
    model.save_pretrained(folder)
    # Keep chat_template inside tokenizer_config.json, where GGUF converters look for it.
    tokenizer.save_pretrained(folder, save_jinja_files=False)
    # transformers 5 no longer writes tokenizer.model; llama.cpp's converter needs it.
    (folder / "tokenizer.model").write_bytes(spm_model)
    config_path = folder / "tokenizer_config.json"
    config = {k: v for k, v in json.loads(config_path.read_text()).items() if k not in ("is_local", "local_files_only")}
    # transformers 5 leaves these out, and llama.cpp then adds BOS by default for a SentencePiece vocab,
    # so HF and GGUF would tokenize the same prompt differently.
    config.update(add_bos_token=False, add_eos_token=False)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    # save_pretrained writes model.safetensors as 0600; a container running as another user must read it.
    for path in folder.iterdir():
        path.chmod(0o644)


def replace_dir(src: Path, dst: Path) -> None:
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def make_tiny_model(arch: str, out: Path, seed: int = 0, pretrain_steps: int = DEFAULT_PRETRAIN_STEPS,
                    tokenizer_dir: Path | None = None) -> Path:
    """Build the tiny `arch` model into `out`, replacing it only once the build succeeded; return `out`.

    With ``tokenizer_dir`` the model is built around that folder's real tokenizer (tiny_real_tokenizer.py)."""
    from tiny_real_tokenizer import REAL_ARCHS, build_around_tokenizer

    allowed = REAL_ARCHS if tokenizer_dir else ARCHS
    if arch not in allowed:
        raise ValueError(f"unknown arch {arch!r}; expected one of: {', '.join(allowed)}")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if tokenizer_dir:
            loss = build_around_tokenizer(Path(tokenizer_dir), arch, partial, seed, pretrain_steps)
        else:
            docs = make_corpus(seed)
            spm_model = train_sentencepiece(docs, seed)
            tokenizer = build_tokenizer(spm_model, arch)
            model = build_model(arch, tokenizer, seed)
            loss = pretrain(model, tokenizer, docs, pretrain_steps, seed)
            save(model, tokenizer, spm_model, partial)
        if loss is not None:
            print(f"pretrained {pretrain_steps} steps, last loss {loss:.3f}", file=sys.stderr)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_dir(partial, out)
    return out


def main(argv: list[str] | None = None) -> int:
    from fetch_tokenizers import FAMILIES, fetch_tokenizer
    from tiny_real_tokenizer import REAL_ARCHS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(set(ARCHS + REAL_ARCHS)),
                        help=f"{' or '.join(ARCHS)} for the SentencePiece tokenizer; with a --tokenizer folder, "
                             f"{' or '.join(REAL_ARCHS)} (a family brings its own)")
    parser.add_argument("--tokenizer", default="sentencepiece",
                        help=f"sentencepiece (trained here, the default), {', '.join(FAMILIES)}, or a folder "
                             "with tokenizer.json and tokenizer_config.json")
    parser.add_argument("--out", required=True, type=Path, help="output folder, replaced on success")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=DEFAULT_PRETRAIN_STEPS)
    args = parser.parse_args(argv)
    tokenizer_dir, arch = None, args.arch
    if args.tokenizer in FAMILIES:
        tokenizer_dir, arch = fetch_tokenizer(args.tokenizer), arch or FAMILIES[args.tokenizer].arch
    elif args.tokenizer != "sentencepiece":
        tokenizer_dir = Path(args.tokenizer)
        if not all((tokenizer_dir / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            parser.error(f"--tokenizer {tokenizer_dir} holds no tokenizer.json and tokenizer_config.json")
    if arch is None:
        parser.error("--arch is needed unless --tokenizer names a family")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print(make_tiny_model(arch, args.out, args.seed, args.pretrain_steps, tokenizer_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
