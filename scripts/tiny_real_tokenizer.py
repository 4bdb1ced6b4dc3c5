"""A tiny model around a real tokenizer (Qwen3's, Llama 3's, Gemma 3's or Llama 2's 32-262k vocabulary and chat
template).

Used by ``make_tiny_model.py --tokenizer qwen3|llama3|gemma3|DIR``. The tokenizer files are copied as they are, so
llama.cpp's converter meets the real pre-tokenizer and special tokens. Pretraining stays as fast as for the
SentencePiece model because it runs over the few hundred tokens the generated corpus uses: the other rows of
the (tied) embedding are zero, so their logits are 0, and one extra logit fixed at log(their count) stands for
all of them. That is exactly the full-vocabulary softmax, at a tiny fraction of its cost.
"""

import math
import shutil
from pathlib import Path

from make_tiny_model import BATCH_SIZE, MAX_POSITIONS, SEQ_LEN, make_corpus

REAL_ARCHS = ("llama", "qwen3")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def build_around_tokenizer(folder: Path, arch: str, out: Path, seed: int, pretrain_steps: int) -> float | None:
    """Write the model into ``out`` (an empty folder); return the last pretraining loss."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        raise ValueError(f"{folder}/tokenizer_config.json has no chat_template")
    docs = make_corpus(seed, render=lambda messages: tokenizer.apply_chat_template(messages, tokenize=False))
    ids = [i for doc in tokenizer(docs, add_special_tokens=False)["input_ids"] for i in doc]
    model = build_model(arch, tokenizer, seed)
    loss = pretrain_compact(model, ids, len(tokenizer), pretrain_steps, seed)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(folder / name, out / name)
    for path in out.iterdir():
        path.chmod(0o644)  # save_pretrained writes 0600; a container running as another user must read it
    return loss


def build_model(arch: str, tokenizer, seed: int):
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen3Config

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
    config_cls = {"llama": LlamaConfig, "qwen3": Qwen3Config}[arch]
    # Hidden 256 and intermediate 512 keep every k-quant row a multiple of 256; tied embeddings (as in the
    # small Qwen3 and Llama 3.2 models) halve what the vocabulary costs.
    config = config_cls(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(**ids)
    return model


def pretrain_compact(model, ids: list[int], vocab_size: int, steps: int, seed: int) -> float | None:
    """Train on the used rows of the tied embedding only; every other row ends (and stays) zero."""
    import torch
    import torch.nn.functional as F

    used = torch.tensor(sorted(set(ids)))
    compact = torch.full((vocab_size,), -1, dtype=torch.long)
    compact[used] = torch.arange(len(used))
    blocks = compact[torch.tensor(ids[: len(ids) // SEQ_LEN * SEQ_LEN])].view(-1, SEQ_LEN)
    embedding = model.get_input_embeddings()
    rows = torch.nn.Parameter(embedding.weight.detach()[used].clone())
    # The zero rows' share of the softmax: (vocab - used) * exp(0), as one logit.
    rest = torch.tensor(math.log(vocab_size - len(used)))
    params = [rows] + [p for name, p in model.named_parameters() if "embed_tokens" not in name]
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    threads, loss = torch.get_num_threads(), None
    torch.set_num_threads(1)  # as in make_tiny_model.pretrain: small matrices, and spinning threads hurt others
    model.train()
    try:
        for _ in range(steps):
            batch = blocks[torch.randint(len(blocks), (BATCH_SIZE,), generator=generator)]
            hidden = model.model(inputs_embeds=rows[batch], use_cache=False).last_hidden_state
            logits = torch.cat([hidden @ rows.T, rest.expand(*hidden.shape[:2], 1)], dim=-1)
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        embedding.weight.zero_()
        embedding.weight[used] = rows.detach()
    model.eval()
    return None if loss is None else loss.item()

