"""`backprop plan`'s arithmetic, checked against values worked out by hand for a small model.

The hand model: Llama-shaped, hidden 8, intermediate 16, 2 layers, 2 heads of 4 (one key/value head),
vocabulary 10, untied head. Per layer its linear layers hold q 8x8 + k 8x4 + v 8x4 + o 8x8 + gate, up
and down 8x16 each = 576 weights; with the embedding and head (2 x 10 x 8 = 160) and the norms
(2 x 2 x 8 + 8 = 40) that is 1,352 parameters.
"""

from dataclasses import replace

import pytest

from backpropagate.planning.memory import RUNTIME_CPU_BYTES, TOKENIZER_BYTES_PER_ENTRY, RunShape, estimate
from backpropagate.planning.presets import presets
from backpropagate.planning.run_plan import what_fits
from backpropagate.planning.shape import ModelShape

HAND = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 10, "tie_word_embeddings": False}
LORA_CPU = RunShape(batch_size=2, seq_len=32, lora_r=4, targets=("all-linear",), qlora=False, device="cpu")
QLORA_CUDA = RunShape(batch_size=2, seq_len=32, lora_r=4, targets=("all-linear",), qlora=True, device="cuda")


@pytest.fixture
def hand() -> ModelShape:
    return ModelShape.from_config(HAND, "hand")


def test_parameters_count_every_linear_layer_embedding_head_and_norm(hand):
    assert hand.layers * hand.layer_linear_parameters() == 1152
    assert hand.parameters() == 1352


def test_adapter_is_rank_times_fan_in_plus_fan_out_in_fp32_with_its_gradient_and_two_adam_moments(hand):
    # Per layer: 4 x (16 + 12 + 12 + 16 + 24 + 24 + 24) = 512; two layers 1,024 parameters, 4 bytes each.
    plan = estimate(hand, LORA_CPU)
    assert (plan.lora, plan.gradients, plan.optimizer) == (4096, 4096, 8192)
    # Only the query and value projections: 4 x (16 + 12) x 2 layers = 224 parameters.
    assert estimate(hand, RunShape(2, 32, 4, ("q_proj", "v_proj"), False, "cpu")).lora == 224 * 4


def test_weights_are_fp32_on_the_cpu_bf16_on_cuda_and_nf4_for_qlora_linear_layers(hand):
    assert estimate(hand, LORA_CPU).weights == 1352 * 4
    assert estimate(hand, RunShape(2, 32, 4, ("all-linear",), False, "cuda")).weights == 1352 * 2
    # NF4: 1,152 linear weights at 0.515869 bytes = 594; the other 200 parameters are cast to fp32.
    assert estimate(hand, QLORA_CUDA).weights == 594 + 800


def test_lora_on_the_cpu_keeps_every_layers_activations(hand):
    # Per layer and token: 2h 16 + dropped inputs and masks 2 x 64 + 7 adapters x rank 4 + 4q 32 + 3i 48
    # + one mask row of 32 = 284 elements x 4 bytes + 2 heads' fp32 log-sum-exp = 1,144 bytes. Two layers
    # 2,288, one more for the backward pass's working set, 96 around the decoder: 3,528 per token, 64 tokens.
    plan = estimate(hand, LORA_CPU)
    assert plan.gradient_checkpointing is False
    assert plan.activations == 225_792
    assert plan.peak == (5408 + 4096 + 4096 + 8192 + 225_792 + 7_680 + RUNTIME_CPU_BYTES + 11_500 + 49_152)


def test_the_loss_chunk_on_the_cpu_is_three_fp32_buffers_since_its_logits_are_fp32_already(hand):
    # Log-softmax, its gradient and the logits' gradient: 64 positions x 10 x 12 bytes. On CUDA the bf16
    # logits and the gradient cast back to bf16 come on top: 16 bytes a logit.
    assert estimate(hand, LORA_CPU).loss_chunk == 64 * 10 * 12
    assert estimate(hand, replace(LORA_CPU, device="cuda")).loss_chunk == 64 * 10 * 16


def test_the_cpu_runtime_is_the_process_without_a_model_plus_its_tokenizer_by_vocabulary(hand):
    assert estimate(hand, LORA_CPU).runtime == RUNTIME_CPU_BYTES + 10 * TOKENIZER_BYTES_PER_ENTRY
    big_vocabulary = ModelShape.from_config(HAND | {"vocab_size": 49_152}, "hand")
    assert estimate(big_vocabulary, LORA_CPU).runtime == RUNTIME_CPU_BYTES + 49_152 * 1150  # SmolLM2's: 54 MiB
    assert estimate(hand, replace(LORA_CPU, device="cuda")).runtime == 0  # host memory, not the GPU's


def test_on_the_cpu_the_allocator_keeps_three_intermediate_width_temporaries_per_adapted_gate_and_up(hand):
    # Gate and up, 16 wide each: 3 x 32 elements x 4 bytes per token and layer, 64 tokens, 2 layers.
    assert estimate(hand, LORA_CPU).allocator_slack == 3 * 32 * 4 * 64 * 2
    assert estimate(hand, replace(LORA_CPU, targets=("up_proj", "v_proj"))).allocator_slack == 3 * 16 * 4 * 64 * 2
    assert estimate(hand, replace(LORA_CPU, targets=("q_proj", "v_proj"))).allocator_slack == 0
    assert estimate(hand, replace(LORA_CPU, dropout=False)).allocator_slack == 3 * 32 * 4 * 64 * 2  # the same three
    assert estimate(hand, replace(LORA_CPU, device="cuda")).allocator_slack == 0  # torch's caching allocator


def test_a_temporary_of_32_mib_or_more_is_mapped_alone_and_leaves_no_hole(hand):
    # 16 wide x 4 bytes = 64 bytes a token: a block reaches glibc's largest mmap threshold at 524,288 tokens.
    below = replace(LORA_CPU, batch_size=1, seq_len=524_287)
    assert estimate(hand, below).allocator_slack == 3 * 32 * 4 * 524_287 * 2
    assert estimate(hand, replace(below, seq_len=524_288)).allocator_slack == 0


def test_qlora_trains_with_gradient_checkpointing_so_only_layer_inputs_stay(hand):
    # bf16: each layer keeps its input (8 x 2 bytes), one layer is recomputed (284 x 2 + 8 = 576) and as
    # much again is the backward pass's working set, and 48 around the decoder: 1,232 bytes per token.
    plan = estimate(hand, QLORA_CUDA)
    assert plan.gradient_checkpointing is True
    assert plan.activations == 1232 * 64
    assert plan.activations_other_way == (3 * 576 + 48) * 64
    assert plan.runtime == plan.allocator_slack == 0
    assert plan.peak == 1394 + 4096 + 4096 + 8192 + 78_848 + 10_240


def test_without_dropout_adapters_share_their_inputs(hand):
    # The attention adapters share one normed input, the MLP's the other (2h); o and down keep their own
    # inputs (q 8 + i 16): 40 elements where dropout keeps 128.
    with_dropout = estimate(hand, LORA_CPU).activations
    without = estimate(hand, RunShape(2, 32, 4, ("all-linear",), False, "cpu", dropout=False)).activations
    assert with_dropout - without == (128 - 40) * 4 * 3 * 64  # two layers kept, one in the backward pass


def test_a_run_that_does_not_fit_is_told_the_smaller_micro_batch_with_the_same_rows_per_step(hand):
    big = RunShape(batch_size=8, seq_len=32, lora_r=4, targets=("all-linear",), qlora=False, device="cuda")
    limit = estimate(hand, RunShape(2, 32, 4, ("all-linear",), False, "cuda")).peak
    assert what_fits(hand, big, accumulation=4, limit=limit) == "--batch-size 2 --gradient-accumulation 16"


def test_qlora_is_offered_on_a_gpu_when_one_row_is_still_too_big():
    qwen = presets()["qwen2.5-7b"].shape
    run = RunShape(batch_size=1, seq_len=1024, lora_r=16, targets=("all-linear",), qlora=False, device="cuda")
    assert what_fits(qwen, run, accumulation=4, limit=15 * 2**30) == "--qlora"


def test_phi3_layers_are_fused_and_lora_adapts_the_fused_ones():
    phi = presets()["phi4-mini"].shape
    assert phi.linear_names() == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    # 3072 -> 24 x 128 + 2 x 8 x 128 = 5120 for qkv; 3072 -> 2 x 8192 for gate and up.
    assert {lin.name: lin.fan_out for lin in phi.linears()}["qkv_proj"] == 5120


def test_a_preset_defaults_to_qlora_exactly_when_lora_would_not_fit_a_16_gb_card():
    for preset in presets().values():
        lora = RunShape(batch_size=2, seq_len=1024, lora_r=16, targets=("all-linear",), qlora=False, device="cuda")
        needs_qlora = estimate(preset.shape, lora).peak > 16 * 2**30
        assert preset.method == ("qlora" if needs_qlora else "lora"), preset.name
