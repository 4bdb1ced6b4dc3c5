"""Measuring a model for the quality report: held-out loss, and greedy answers to prompts.

Shared by the train stage (before, during and after training) and the eval stage (after the fact).
Held-out loss is the mean next-token loss over the positions that training would take loss on (the
replies, unless --train-on-inputs), with the same chunked loss as training. Answers are greedy, so a
report does not change from one measurement to the next; the base's are the same model with the
adapter switched off.
"""

from contextlib import nullcontext

import torch
from backpropagate.contract.dataset import load_dataset
from backpropagate.contract.quality import Answered, Prompt
from backpropagate.contract.chat_template import bounded_apply

from backpropagate_stages.chat_tokens import hf_tokenize
from backpropagate_stages.train import data
from backpropagate_stages.train.loop import token_losses

ROWS_PER_PASS = 8


def tokenize_file(spec_data, tokenizer, max_seq_length: int, train_on_inputs: bool) -> list:
    """The examples of an eval data file, tokenized as training tokenizes; those with no target left out."""
    dataset = load_dataset(spec_data.path, spec_data.format, spec_data.skip_invalid)
    tokenized = [data.tokenize(e, tokenizer, max_seq_length, train_on_inputs) for e in dataset.examples]
    return [t for t in tokenized if t.trained_tokens]


@torch.no_grad()
def held_out_loss(model, examples: list, pad_id: int, device) -> float:
    """Mean loss per target token over ``examples``; the model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    total, targets = 0.0, 0
    for at in range(0, len(examples), ROWS_PER_PASS):
        batch = data.collate([[e] for e in examples[at: at + ROWS_PER_PASS]], pad_id)
        total += float(token_losses(model, batch, device).sum())
        targets += batch.target_tokens
    model.train(was_training)
    return round(total / max(1, targets), 6)


@torch.no_grad()
def answer(model, tokenizer, prompts: list[Prompt], max_new_tokens: int, device, adapter: bool = True) -> list[str]:
    """Greedy answers, one per prompt, through the tokenizer's chat template (``adapter=False``: the base's).

    Prompts go ROWS_PER_PASS at a time, padded on the left, so a step of generation serves them all."""
    was_training = model.training
    model.eval()
    off = model.disable_adapter() if not adapter and hasattr(model, "disable_adapter") else nullcontext()
    pad = tokenizer.pad_token_id
    replies = []
    with off:
        for at in range(0, len(prompts), ROWS_PER_PASS):
            rows = [prompt_ids(tokenizer, p.prompt) for p in prompts[at: at + ROWS_PER_PASS]]
            width = max(len(row) for row in rows)
            ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=device)
            mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            replies += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    model.train(was_training)
    return replies


def prompt_ids(tokenizer, text: str) -> list[int]:
    """The chat template's rendering of one user message awaiting its answer; the user's text is
    tokenized with special tokens off, like training data, and the template's own text with them on."""
    rendered = bounded_apply(tokenizer, [{"role": "user", "content": text}], add_generation_prompt=True)
    at = rendered.rfind(text)
    tokenize = hf_tokenize(tokenizer)
    if at < 0:  # a template that rewrites the message: take its rendering as it is
        return tokenize(rendered, True)
    return tokenize(rendered[:at], True) + tokenize(text, False) + tokenize(rendered[at + len(text):], True)


def answered(prompts: list[Prompt], base: list[str], fine_tune: list[str]) -> list[Answered]:
    return [Answered(prompt=p.prompt, expect=p.expect, kind=p.kind, base=b, fine_tune=f)
            for p, b, f in zip(prompts, base, fine_tune)]
