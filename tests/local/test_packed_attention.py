"""Attention within each packed example gives what the block-diagonal mask gives, and is what CPU runs use."""

import torch
from backpropagate.contract.dataset import Example, Message
from backpropagate.contract.settings import LoraSettings, TrainingSettings
from backpropagate_stages.train import packed_attention
from backpropagate_stages.train.data import collate, tokenize
from backpropagate_stages.train.loop import token_losses
from backpropagate_stages.train.model import choose_backend, load_lora_model
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.integrations.sdpa_attention import sdpa_attention_forward


def lora_model(path, attention: str):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention)
    return get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))


def examples(tokenizer, count: int):
    return [tokenize(Example(line=i, messages=(Message("user", f"What is {i} times {i + 3}? " * (1 + i % 3)),
                                               Message("assistant", f"{i} times {i + 3} is {i * (i + 3)}."))),
                     tokenizer, 256, False) for i in range(count)]


def test_packed_rows_get_the_losses_and_gradients_of_sdpas_block_diagonal_mask(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = examples(tokenizer, 7)
    batch = collate([rows[:4], rows[4:6], rows[6:]], tokenizer.pad_token_id)  # the last row padded, as a segment

    def loss_and_grads(attention):
        model = lora_model(tiny_model, attention)
        loss = token_losses(model, batch, "cpu").sum() / batch.target_tokens
        loss.backward()
        return loss.detach(), [p.grad for p in model.parameters() if p.requires_grad]

    reference, reference_grads = loss_and_grads("sdpa")
    packed, packed_grads = loss_and_grads(packed_attention.register())
    torch.testing.assert_close(packed, reference, atol=1e-6, rtol=1e-6)
    for ours, theirs in zip(packed_grads, reference_grads):  # float32 sums in another order
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_each_packed_example_reads_as_it_would_alone(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = examples(tokenizer, 3)
    model = lora_model(tiny_model, packed_attention.register()).eval()
    decoder = model.get_base_model().get_decoder()

    def hidden(batch):
        return decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state

    with torch.no_grad():
        packed = hidden(collate([rows], tokenizer.pad_token_id))[0]
        at = 0
        for example in rows:
            alone = hidden(collate([[example]], tokenizer.pad_token_id))[0]
            torch.testing.assert_close(packed[at:at + len(example.input_ids)], alone, atol=1e-5, rtol=1e-5)
            at += len(example.input_ids)


class Attention(torch.nn.Module):
    is_causal = True

    def __init__(self, num_key_value_groups: int = 1):
        super().__init__()
        self.num_key_value_groups = num_key_value_groups


def test_packed_rows_need_no_mask_each_example_attends_to_itself_alone():
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 4, 10, 8), torch.randn(2, 2, 10, 8), torch.randn(2, 2, 10, 8)  # GQA 4/2
    positions = torch.tensor([list(range(6)) + list(range(4)), list(range(3)) + list(range(7))])
    block_diagonal = torch.zeros(2, 1, 10, 10, dtype=torch.bool)
    for row, lengths in enumerate(((6, 4), (3, 7))):
        start = 0
        for length in lengths:
            block_diagonal[row, 0, start:start + length, start:start + length] = torch.ones(length, length).tril() > 0
            start += length
    expected, _ = sdpa_attention_forward(Attention(2), query, key, value, block_diagonal)
    got, _ = packed_attention.packed_sdpa_attention(Attention(2), query, key, value, None, position_ids=positions)
    torch.testing.assert_close(got, expected)


def test_a_sliding_window_shorter_than_an_example_is_left_to_sdpa_and_its_mask():
    torch.manual_seed(0)
    query, key, value = (torch.randn(1, 2, 12, 8) for _ in range(3))
    positions = torch.tensor([list(range(8)) + list(range(4))])  # examples of 8 and 4 tokens
    window = 3
    visible = torch.zeros(12, 12, dtype=torch.bool)
    for start, length in ((0, 8), (8, 4)):
        for i in range(length):
            visible[start + i, start + max(0, i - window + 1):start + i + 1] = True
    mask = visible[None, None]
    expected, _ = sdpa_attention_forward(Attention(), query, key, value, mask)
    got, _ = packed_attention.packed_sdpa_attention(Attention(), query, key, value, mask, position_ids=positions,
                                                    sliding_window=window)
    torch.testing.assert_close(got, expected)
    without_window, _ = packed_attention.packed_sdpa_attention(Attention(), query, key, value, mask,
                                                               position_ids=positions)
    assert not torch.allclose(without_window, expected)  # the window mattered: the fallback was needed


def test_the_train_stage_loads_cpu_models_with_attention_per_example(tiny_model):
    backend = choose_backend("auto", "cpu", "llama", unsloth_installed=False)
    model = load_lora_model(str(tiny_model), LoraSettings(), TrainingSettings(), torch.device("cpu"), backend)
    assert model.get_base_model().config._attn_implementation == packed_attention.NAME
