"""SLAO's equations, each against an independent computation in numpy on random matrices.

The module under test is stages/backpropagate_stages/train/slao.py (torch); the reference here is
written from the equations directly, in float64 numpy.
"""

import math

import numpy as np
import pytest
import torch
from backpropagate.contract.merges import MERGES
from backpropagate_stages.train import slao

A_KEY = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B_KEY = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


def reference_start(a: np.ndarray) -> np.ndarray:
    """Q^T of the reduced QR of A^T, each column of Q multiplied by sign(R_jj), zero counting as +1."""
    q, r = np.linalg.qr(a.T, mode="reduced")
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return (q * signs).T


def random_adapter(rng, m=24, n=40, r=8):
    return {A_KEY: torch.from_numpy(rng.standard_normal((r, n))), B_KEY: torch.from_numpy(rng.standard_normal((m, r)))}


@pytest.mark.parametrize("seed", range(5))
def test_the_qr_start_matches_numpy_and_has_orthonormal_rows(seed):
    a = np.random.default_rng(seed).standard_normal((8, 40))
    start = slao.orthonormal_start(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(start, reference_start(a), atol=1e-10)
    np.testing.assert_allclose(start @ start.T, np.eye(8), atol=1e-10)  # A0 A0^T = I_r


@pytest.mark.parametrize("seed", range(5))
def test_the_sign_rule_makes_the_start_rebuild_a_with_a_positive_diagonal(seed):
    # With Q's columns signed by R's diagonal, A_ft = R'^T A0 for an upper-triangular R' whose diagonal
    # is positive: the basis no longer depends on the QR routine's sign convention.
    a = np.random.default_rng(seed).standard_normal((6, 30))
    start = slao.orthonormal_start(torch.from_numpy(a)).numpy()
    r_signed = (a @ start.T).T  # R' = A0 A^T since A0 has orthonormal rows spanning A's row space
    np.testing.assert_allclose(r_signed.T @ start, a, atol=1e-10)
    np.testing.assert_allclose(np.tril(r_signed, -1), 0, atol=1e-10)
    assert (np.diag(r_signed) > 0).all()
    flipped = slao.orthonormal_start(torch.from_numpy(-a)).numpy()
    np.testing.assert_allclose(flipped, -start, atol=1e-10)  # -A's basis is the negated one, not a mix


def test_a_zero_diagonal_entry_of_r_counts_as_plus_one():
    a = np.random.default_rng(7).standard_normal((4, 12))
    a[0] = 0.0  # A^T's first column is zero, so R_00 = 0
    q, r = torch.linalg.qr(torch.from_numpy(a).T, mode="reduced")
    assert r[0, 0] == 0
    start = slao.orthonormal_start(torch.from_numpy(a))
    torch.testing.assert_close(start[0], q[:, 0])  # not negated


def test_run_i_starts_from_the_previous_fine_tuned_b_and_the_qr_of_its_a():
    previous_ft = random_adapter(np.random.default_rng(1))
    start = slao.start_state(previous_ft, "slao")
    np.testing.assert_array_equal(start[B_KEY].numpy(), previous_ft[B_KEY].numpy())
    np.testing.assert_allclose(start[A_KEY].numpy(), reference_start(previous_ft[A_KEY].numpy()), atol=1e-10)
    assert start[B_KEY] is not previous_ft[B_KEY]  # a copy: training it leaves the saved adapter alone


def test_merge_none_starts_from_the_previous_adapter_as_it_is():
    previous_ft = random_adapter(np.random.default_rng(2))
    start = slao.start_state(previous_ft, "none")
    for name in previous_ft:
        np.testing.assert_array_equal(start[name].numpy(), previous_ft[name].numpy())


@pytest.mark.parametrize("i", [1, 2, 3, 4, 9, 100])
def test_lambda_is_one_over_the_square_root_of_the_run_index(i):
    assert MERGES["slao"].weight(i) == pytest.approx(1 / math.sqrt(i), rel=1e-15)
    assert MERGES["slao-no-qr"].weight(i) == MERGES["slao"].weight(i)
    assert MERGES["slao-mean"].weight(i) == pytest.approx(1 / i, rel=1e-15)
    assert MERGES["none"].weight(i) is None


def test_lambda_refuses_a_run_index_below_one():
    with pytest.raises(ValueError, match="runs count from 1"):
        MERGES["slao"].weight(0)


def test_the_merge_over_four_runs_matches_the_recurrence_in_numpy():
    rng = np.random.default_rng(3)
    fine_tuned = [random_adapter(rng) for _ in range(4)]
    merged = slao.merged_state(None, fine_tuned[0], 1, "slao")
    b_merge = fine_tuned[0][B_KEY].numpy()
    np.testing.assert_array_equal(merged[B_KEY].numpy(), b_merge)  # run 1: B_merge,1 = B_ft,1
    for i in range(2, 5):
        merged = slao.merged_state(merged, fine_tuned[i - 1], i, "slao")
        b_merge = b_merge + (1 / np.sqrt(i)) * (fine_tuned[i - 1][B_KEY].numpy() - b_merge)
        np.testing.assert_allclose(merged[B_KEY].numpy(), b_merge, atol=1e-12)
        np.testing.assert_array_equal(merged[A_KEY].numpy(), fine_tuned[i - 1][A_KEY].numpy())  # A_merge,i = A_ft,i


def test_the_no_qr_ablation_starts_from_the_previous_adapter_as_it_is_and_merges_as_slao():
    rng = np.random.default_rng(8)
    fine_tuned = [random_adapter(rng) for _ in range(3)]
    start = slao.start_state(fine_tuned[0], "slao-no-qr")
    for name in fine_tuned[0]:
        np.testing.assert_array_equal(start[name].numpy(), fine_tuned[0][name].numpy())
    ours = slao.merged_state(slao.merged_state(None, fine_tuned[0], 1, "slao-no-qr"), fine_tuned[1], 2, "slao-no-qr")
    paper = slao.merged_state(slao.merged_state(None, fine_tuned[0], 1, "slao"), fine_tuned[1], 2, "slao")
    for name in ours:
        np.testing.assert_array_equal(ours[name].numpy(), paper[name].numpy())


def test_the_mean_ablation_starts_as_slao_and_merges_b_into_the_mean_of_every_runs_b():
    rng = np.random.default_rng(9)
    fine_tuned = [random_adapter(rng) for _ in range(4)]
    np.testing.assert_allclose(slao.start_state(fine_tuned[0], "slao-mean")[A_KEY].numpy(),
                               reference_start(fine_tuned[0][A_KEY].numpy()), atol=1e-10)
    merged = slao.merged_state(None, fine_tuned[0], 1, "slao-mean")
    for i in range(2, 5):
        merged = slao.merged_state(merged, fine_tuned[i - 1], i, "slao-mean")
        mean = np.mean([adapter[B_KEY].numpy() for adapter in fine_tuned[:i]], axis=0)
        np.testing.assert_allclose(merged[B_KEY].numpy(), mean, atol=1e-12)
        np.testing.assert_array_equal(merged[A_KEY].numpy(), fine_tuned[i - 1][A_KEY].numpy())


def test_merge_none_deploys_the_last_adapter():
    rng = np.random.default_rng(4)
    previous, ft = random_adapter(rng), random_adapter(rng)
    merged = slao.merged_state(previous, ft, 2, "none")
    for name in ft:
        np.testing.assert_array_equal(merged[name].numpy(), ft[name].numpy())


def test_the_merge_refuses_adapters_of_other_layers():
    rng = np.random.default_rng(5)
    other = {k.replace("q_proj", "v_proj"): v for k, v in random_adapter(rng).items()}
    with pytest.raises(ValueError, match="adapts other layers"):
        slao.merged_state(other, random_adapter(rng), 2, "slao")


def test_a_float32_adapter_keeps_its_dtype_through_start_and_merge():
    rng = np.random.default_rng(6)
    ft = {k: v.float() for k, v in random_adapter(rng).items()}
    assert all(t.dtype == torch.float32 for t in slao.start_state(ft, "slao").values())
    assert all(t.dtype == torch.float32 for t in slao.merged_state(ft, ft, 2, "slao").values())
