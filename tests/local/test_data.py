"""Loss masks and packing, on the tiny model's real tokenizer and weights."""

import pytest
import torch
from backpropagate.contract.dataset import Example, Message
from backpropagate_stages.train.data import IGNORE, Tokenized, collate, pack, tokenize
from backpropagate_stages.train.loop import token_losses
from transformers import AutoModelForCausalLM, AutoTokenizer


def chat(*turns: tuple[str, str]) -> Example:
    return Example(line=1, messages=tuple(Message(role, content) for role, content in turns))


CONVERSATION = chat(("system", "Be brief."), ("user", "Name a colour."), ("assistant", "Red."),
                    ("user", "Another?"), ("assistant", "Blue."))


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    return AutoModelForCausalLM.from_pretrained(tiny_model).eval()


def trained_text(tokenized: Tokenized, tokenizer) -> str:
    return tokenizer.decode([t for t in tokenized.labels if t != IGNORE])


def test_only_assistant_replies_and_their_end_of_turn_carry_loss(tokenizer):
    tokenized = tokenize(CONVERSATION, tokenizer, max_seq_length=512, train_on_inputs=False)
    # The newline ChatML writes after <|im_end|> is the template's, not the reply's.
    assert trained_text(tokenized, tokenizer) == "Red.<|im_end|>Blue.<|im_end|>"


def test_train_on_inputs_puts_loss_on_every_token(tokenizer):
    tokenized = tokenize(CONVERSATION, tokenizer, max_seq_length=512, train_on_inputs=True)
    assert tokenized.labels == tokenized.input_ids


def test_raw_text_is_trained_whole_and_ends_with_eos(tokenizer):
    tokenized = tokenize(Example(line=1, text="plain words here"), tokenizer, 512, False)
    assert tokenized.input_ids[-1] == tokenizer.eos_token_id
    assert tokenized.labels == tokenized.input_ids


def test_long_examples_are_cut_to_max_seq_length(tokenizer):
    long = chat(("user", "word " * 400), ("assistant", "ok"))
    assert len(tokenize(long, tokenizer, 64, False).input_ids) == 64


def test_packing_fills_rows_with_whole_examples_within_the_limit():
    examples = [Tokenized([1] * n, [1] * n) for n in (50, 40, 30, 20, 10, 60, 5)]
    rows = pack(examples, max_seq_length=64)
    assert sorted(len(e.input_ids) for row in rows for e in row) == sorted([50, 40, 30, 20, 10, 60, 5])
    assert all(sum(len(e.input_ids) for e in row) <= 64 for row in rows)
    assert len(rows) == 4  # 215 tokens need at least 4 rows of 64


def test_an_example_has_the_same_loss_packed_with_others_as_alone(tokenizer, model):
    examples = [
        tokenize(CONVERSATION, tokenizer, 512, False),
        tokenize(chat(("user", "What do bees make?"), ("assistant", "Honey, mostly.")), tokenizer, 512, False),
        tokenize(Example(line=1, text="a short line of raw text"), tokenizer, 512, False),
    ]
    with torch.no_grad():
        alone = [token_losses(model, collate([[e]], tokenizer.pad_token_id), "cpu")[0] for e in examples]
        # Padding rows alongside show that the pad segment does not leak into examples either.
        packed = token_losses(model, collate([examples, examples[:1]], tokenizer.pad_token_id), "cpu")[0]
    start = 0
    for example, own in zip(examples, alone):
        n = len(example.input_ids)
        # Position 0 of each example is never predicted; the rest must match the example alone.
        torch.testing.assert_close(packed[start: start + n - 1], own[: n - 1], atol=1e-4, rtol=1e-4)
        start += n
    assert start > len(examples[0].input_ids)


def test_without_restarting_positions_the_examples_would_leak_into_each_other(tokenizer, model):
    """The control for the test above: one long causal sequence gives different losses."""
    a = tokenize(CONVERSATION, tokenizer, 512, False)
    b = tokenize(chat(("user", "What do bees make?"), ("assistant", "Honey, mostly.")), tokenizer, 512, False)
    packed = collate([[a, b]], tokenizer.pad_token_id)
    leaky = type(packed)(packed.input_ids, packed.labels, torch.arange(packed.input_ids.shape[1])[None],
                         packed.real_tokens)
    with torch.no_grad():
        isolated = token_losses(model, packed, "cpu")[0]
        mixed = token_losses(model, leaky, "cpu")[0]
    n = len(a.input_ids)
    assert not torch.allclose(isolated[n:], mixed[n:], atol=1e-3)
