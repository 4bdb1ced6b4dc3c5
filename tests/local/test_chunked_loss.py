"""The chunked loss equals the loss of full logits, value and gradient, however the chunks fall."""

import pytest
import torch
import torch.nn.functional as F
from backpropagate.contract.dataset import Example, Message
from backpropagate_stages.train.data import IGNORE, collate, tokenize
from backpropagate_stages.train.loop import token_losses
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer


def full_logits_losses(model, batch):
    """The straightforward way: every position's logits at once."""
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    targets = batch.labels[:, 1:]
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE,
                           reduction="none").view(targets.shape)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 4096])
def test_chunked_loss_and_gradients_equal_those_of_full_logits(tiny_model, chunk_tokens):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    examples = [tokenize(Example(line=1, messages=(Message("user", f"What is {i} plus {i}?"),
                                                   Message("assistant", f"{i} plus {i} is {2 * i}."))),
                         tokenizer, 128, False) for i in range(3)]
    batch = collate([[examples[0], examples[1]], [examples[2]]], tokenizer.pad_token_id)

    def loss_and_grads(losses):
        loss = losses.sum() / batch.target_tokens
        model.zero_grad()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    reference, reference_grads = loss_and_grads(full_logits_losses(model, batch))
    chunked, chunked_grads = loss_and_grads(token_losses(model, batch, "cpu", chunk_tokens=chunk_tokens))
    torch.testing.assert_close(chunked, reference, atol=1e-6, rtol=1e-6)
    for ours, theirs in zip(chunked_grads, reference_grads):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
