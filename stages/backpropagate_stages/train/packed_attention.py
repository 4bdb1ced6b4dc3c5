"""Attention within each packed example, one causal attention per example, on the CPU.

Packed rows hold several examples; their position ids restart at 0 for each (data.py). Given such
rows, transformers' ``sdpa`` attention builds a block-diagonal causal mask and attends over the
whole row, so a row of four examples of 128 tokens pays for 512 x 512 scores where the examples
need 4 x 128 x 128. This attention finds the examples from the position ids (where they stop
counting up by one, as transformers' own ``find_packed_sequence_indices`` does) and runs SDPA's
causal kernel on each example alone: the same result, about half the attention time on the CPU
(``scripts/bench_train.py``). Anything it does not handle (a sliding window shorter than an
example, a soft cap, attention sinks, a cache, rows of one example) goes to ``sdpa`` unchanged,
with the mask transformers made for it.

On a GPU the per-example loop would launch many small kernels, so the train stage uses it on the
CPU only (model.py).
"""

import torch
import torch.nn.functional as F

NAME = "backpropagate_packed_sdpa"


def register() -> str:
    """Make the attention known to transformers (with sdpa's mask for the fallback); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


_last_positions: list = [None, None]  # [position ids, their examples]: every layer of a forward shares them


def examples_of(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """(start, length) of each example in each row: a new one begins where positions stop counting up by one."""
    if _last_positions[0] is position_ids:
        return _last_positions[1]
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    length = position_ids.shape[1]
    rows = []
    for row in starts.tolist():
        begins = [at for at, begins_here in enumerate(row) if begins_here] + [length]
        rows.append([(begins[i], begins[i + 1] - begins[i]) for i in range(len(begins) - 1)])
    _last_positions[:] = [position_ids, rows]
    return rows


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                          **kwargs) -> tuple[torch.Tensor, None]:
    """Same signature and result as transformers' sdpa attention: ([batch, length, heads, dim], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    rows = None
    if position_ids is not None and _handled(module, query, key, kwargs):
        rows = examples_of(position_ids)
    if rows is None or all(len(examples) == 1 for examples in rows) or _window_too_short(rows, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = query.shape[1] != key.shape[1]
    output = torch.cat([
        torch.cat([F.scaled_dot_product_attention(
            query[row:row + 1, :, start:start + length], key[row:row + 1, :, start:start + length],
            value[row:row + 1, :, start:start + length],
            dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa) for start, length in examples], dim=2)
        for row, examples in enumerate(rows)])
    return output.transpose(1, 2).contiguous(), None


def _handled(module, query, key, kwargs) -> bool:
    """A causal self-attention over the whole row, with nothing sdpa's mask would have to add."""
    return (getattr(module, "is_causal", True) and query.shape[2] == key.shape[2] > 1
            and kwargs.get("softcap") is None and kwargs.get("s_aux") is None
            and kwargs.get("past_key_values") is None and query.shape[-1] == key.shape[-1])


def _window_too_short(rows, kwargs) -> bool:
    window = kwargs.get("sliding_window")
    return window is not None and max(length for examples in rows for _, length in examples) > window
