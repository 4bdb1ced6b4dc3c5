"""From normalised examples to training batches: chat template, loss mask, packing.

- Conversations are rendered with the tokenizer's own chat template (ChatML when it
  has none, with a warning), and only each assistant reply, as the template renders
  it, and the end-of-turn token after it carry loss unless ``train_on_inputs``;
  chat_tokens.py says how the replies are found in any template. The end-of-turn
  token is what teaches the model to stop.
- Packing places whole examples into rows of ``max_seq_length`` (best-fit
  decreasing). Position ids restart at 0 for each example and no attention mask is
  passed, so transformers builds a block-diagonal causal mask: no example attends
  to another, and each example's loss is the same as if it were alone.
"""

import bisect
import random
from dataclasses import dataclass

import torch
from backpropagate.contract.dataset import Example

from backpropagate_stages.chat_tokens import encode, hf_tokenize, render_segments

IGNORE = -100  # label value that cross-entropy skips

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels[1:] if label != IGNORE)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [rows, length]
    labels: torch.Tensor
    position_ids: torch.Tensor
    real_tokens: int  # tokens that are not padding

    @property
    def target_tokens(self) -> int:
        """Tokens that carry loss after the next-token shift."""
        return int((self.labels[:, 1:] != IGNORE).sum())


def tokenize(example: Example, tokenizer, max_seq_length: int, train_on_inputs: bool) -> Tokenized:
    """Token ids and labels for one example, truncated to ``max_seq_length``.

    Text from the data is tokenized with special tokens off, so "<|im_end|>" written in a row never
    becomes the control token (chat_tokens.py); only the chat template's own text yields those.
    """
    if example.text is not None:
        ids = tokenizer(example.text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
        ids = (ids + [tokenizer.eos_token_id])[:max_seq_length]
        return Tokenized(ids, list(ids))

    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    ids, trained = encode(render_segments(messages, tokenizer), hf_tokenize(tokenizer))
    labels = list(ids) if train_on_inputs else [i if t else IGNORE for i, t in zip(ids, trained)]
    return Tokenized(ids[:max_seq_length], labels[:max_seq_length])


def pack(examples: list[Tokenized], max_seq_length: int) -> list[list[Tokenized]]:
    """Group whole examples into rows of at most ``max_seq_length`` tokens (best-fit decreasing)."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    rows: list[list[Tokenized]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted
    for i in order:
        size = len(examples[i].input_ids)
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, row = free.pop(slot)
        else:
            room, row = max_seq_length, len(rows)
            rows.append([])
        rows[row].append(examples[i])
        bisect.insort(free, (room - size, row))
    return rows


def collate(rows: list[list[Tokenized]], pad_id: int) -> Batch:
    """Concatenate each row's examples; pad rows to the longest with a separate padding segment."""
    length = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids, labels, positions, real = [], [], [], 0
    for row in rows:
        row_ids, row_labels, row_pos = [], [], []
        for example in row:
            n = len(example.input_ids)
            row_ids += example.input_ids
            # The first token of an example has no prediction inside that example, and after
            # the shift it would be predicted from the previous example's last token.
            row_labels += [IGNORE] + example.labels[1:]
            row_pos += list(range(n))
        real += len(row_ids)
        pad = length - len(row_ids)
        ids.append(row_ids + [pad_id] * pad)
        labels.append(row_labels + [IGNORE] * pad)
        positions.append(row_pos + list(range(pad)))
    return Batch(torch.tensor(ids), torch.tensor(labels), torch.tensor(positions), real)


class BatchStream:
    """Rows for ever, reshuffled each epoch from the seed; its position can be saved.

    A step takes a fixed number of rows (micro-batch x accumulation), whatever the
    micro-batch: when OOM recovery halves it, the step still sees the same rows.
    """

    def __init__(self, examples: list[Tokenized], max_seq_length: int, packing: bool, pad_id: int,
                 seed: int) -> None:
        self.rows = pack(examples, max_seq_length) if packing else [[e] for e in examples]
        self.pad_id, self.seed = pad_id, seed
        self.epoch, self.index = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.rows)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_step(self, count: int) -> list[int]:
        """The next ``count`` rows, continuing into the next epoch when this one runs out."""
        chosen = []
        while len(chosen) < count:
            if self.index >= len(self._order):
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            take = self._order[self.index : self.index + count - len(chosen)]
            chosen += take
            self.index += len(take)
        return chosen

    def micro_batches(self, row_ids: list[int], size: int) -> list[Batch]:
        return [collate([self.rows[i] for i in row_ids[at : at + size]], self.pad_id)
                for at in range(0, len(row_ids), size)]

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def restore(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._order = self._shuffled(self.epoch)
