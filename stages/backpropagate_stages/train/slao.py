"""SLAO (Qiao & Mahdavi 2025, "Merge before Forget"): one LoRA carried across runs, merged after each.

For every adapted layer, PEFT keeps A as ``lora_A.weight`` (r x n) and B as ``lora_B.weight`` (m x r).

- Run 1 is plain LoRA: B_merge,1 = B_ft,1 and A_merge,1 = A_ft,1.
- Run i >= 2 starts from A = Q_i^T, where Q_i R_i = QR(A_ft,i-1^T) (reduced), each column of Q
  multiplied by the sign of R's matching diagonal entry (zero counts as +1), so A A^T = I_r and the
  basis does not depend on the QR routine's sign convention; and from B = B_ft,i-1, the previous
  run's fine-tuned B (not the merged one).
- After run i: A_merge,i = A_ft,i and B_merge,i = B_merge,i-1 + lambda(i) (B_ft,i - B_merge,i-1),
  lambda(i) = 1 / sqrt(i).

`--merge none` (sequential LoRA) starts run i from the previous fine-tuned adapter as it is, and
its deployed adapter is simply the last one. The two ablations change one part each: `slao-no-qr`
starts run i from A_ft,i-1 as it is, `slao-mean` merges with lambda(i) = 1/i (contract/merges.py
declares them). Everything here is plain torch on state dicts.
"""

import torch
from backpropagate.contract.merges import MERGES


def is_a(name: str) -> bool:
    return ".lora_A." in name


def is_b(name: str) -> bool:
    return ".lora_B." in name


def orthonormal_start(a_ft: torch.Tensor) -> torch.Tensor:
    """Q^T from the reduced QR of A_ft^T, with Q's columns signed by R's diagonal (rows of the result
    are orthonormal). Computed in float64 so the basis is as exact as the input allows."""
    q, r = torch.linalg.qr(a_ft.detach().to(torch.float64).T, mode="reduced")
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    return (q * signs).T.contiguous().to(a_ft.dtype)


def start_state(previous_ft: dict[str, torch.Tensor], merge: str) -> dict[str, torch.Tensor]:
    """The adapter weights run i >= 2 starts from, given run i-1's fine-tuned adapter."""
    orthonormal = MERGES[merge].orthonormal_start
    start = {}
    for name, tensor in previous_ft.items():
        if orthonormal and is_a(name):
            start[name] = orthonormal_start(tensor)
        else:
            start[name] = tensor.clone()
    return start


def merged_state(previous_merged: dict[str, torch.Tensor] | None, ft: dict[str, torch.Tensor], i: int,
                 merge: str) -> dict[str, torch.Tensor]:
    """(B_merge,i, A_merge,i) for every layer after run i; run 1 (no previous merge) is its own adapter."""
    weight = MERGES[merge].weight(i)
    if weight is None or previous_merged is None:
        return {name: tensor.clone() for name, tensor in ft.items()}
    if previous_merged.keys() != ft.keys():
        raise ValueError("the previous merged adapter adapts other layers than this run's")
    merged = {}
    for name, tensor in ft.items():
        if is_b(name):
            old = previous_merged[name].to(torch.float64)
            merged[name] = (old + weight * (tensor.to(torch.float64) - old)).to(tensor.dtype)
        else:
            merged[name] = tensor.clone()
    return merged
