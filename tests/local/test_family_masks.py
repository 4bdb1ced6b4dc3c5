"""Loss masks on the real Qwen3, Llama 3 and Gemma 3 tokenizers and chat templates, from data files as users write them."""

import json
import sys

import pytest
from backpropagate.contract.dataset import load_dataset
from backpropagate_stages.chat_tokens import render_segments
from backpropagate_stages.train.data import IGNORE, tokenize
from transformers import AutoTokenizer

from tests.conftest import ROOT

END_OF_TURN = {"qwen3": "<|im_end|>", "llama3": "<|eot_id|>", "gemma3": "<end_of_turn>"}
CONVERSATIONS = {
    "with a system message": [("system", "Be brief."), ("user", "Name a colour."), ("assistant", "Red."),
                              ("user", "Another one?"), ("assistant", "Blue, like the sea."),
                              ("user", "And a third?"), ("assistant", "Green.")],
    "without a system message": [("user", "What is 2 plus 2?"), ("assistant", "2 plus 2 is 4."),
                                 ("user", "And 3 plus 3?"), ("assistant", "6.")],
}


@pytest.fixture(scope="module", params=list(END_OF_TURN))
def family(request):
    sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_tokenizers import fetch_tokenizer

    return request.param, AutoTokenizer.from_pretrained(fetch_tokenizer(request.param))


def write_rows(path, turns, fmt):
    if fmt == "sharegpt":
        roles = {"system": "system", "user": "human", "assistant": "gpt"}
        row = {"conversations": [{"from": roles[role], "value": text} for role, text in turns]}
    else:
        row = {"messages": [{"role": role, "content": text} for role, text in turns]}
    path.write_text(json.dumps(row) + "\n")
    return load_dataset(path).examples[0]


def trained_spans(tokenized, tokenizer) -> list[str]:
    """Each run of loss-carrying tokens, decoded."""
    spans, current = [], []
    for label in tokenized.labels + [IGNORE]:
        if label != IGNORE:
            current.append(label)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    return spans


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_exactly_the_assistant_messages_and_their_end_of_turn_carry_loss(family, fmt, name, tmp_path):
    family_name, tokenizer = family
    turns = CONVERSATIONS[name]
    example = write_rows(tmp_path / "data.jsonl", turns, fmt)
    tokenized = tokenize(example, tokenizer, 4096, train_on_inputs=False)
    eot = END_OF_TURN[family_name]
    assert trained_spans(tokenized, tokenizer) == [text + eot for role, text in turns if role == "assistant"]
    # Nothing else: the untrained tokens are exactly the template's prompt side.
    assert sum(label != IGNORE for label in tokenized.labels) == sum(
        len(tokenizer(text + eot, add_special_tokens=False)["input_ids"]) for role, text in turns
        if role == "assistant")


def test_qwen3_trains_the_reply_its_template_renders_not_the_reasoning_it_drops(family):
    """Qwen3 drops earlier turns' reasoning; the last turn keeps it after an empty-by-default think header."""
    family_name, tokenizer = family
    if family_name != "qwen3":
        pytest.skip("the reasoning rewrite is Qwen3's")
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "<think>\nearlier thoughts\n</think>\n\nHello."},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "<think>\nlast thoughts\n</think>\n\nGoodbye."}]
    trained = [s.text for s in render_segments(messages, tokenizer) if s.trained]
    assert trained == ["Hello.", "<|im_end|>", "last thoughts\n</think>\n\nGoodbye.", "<|im_end|>"]
    # Without reasoning the template still writes an empty think block before the last reply: not trained.
    plain = [dict(m, content=m["content"].split("\n\n")[-1]) if m["role"] == "assistant" else m for m in messages]
    segments = render_segments(plain, tokenizer)
    assert "<think>\n\n</think>\n\n" in "".join(s.text for s in segments if not s.trained)
    assert [s.text for s in segments if s.trained] == ["Hello.", "<|im_end|>", "Goodbye.", "<|im_end|>"]


def test_a_default_system_header_carries_no_loss(family):
    """A Llama 3.1-style template writes a dated system header of its own when the data has none."""
    family_name, tokenizer = family
    if family_name != "llama3":
        pytest.skip("the dated header is Llama 3.1's")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)  # a copy: the module's stays as shipped
    tokenizer.chat_template = (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] | trim %}"
        "{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
        "{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\n"
        "Today Date: 26 Jul 2024\\n\\n' + system + '<|eot_id|>' }}"
        "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
        "message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
    for turns in CONVERSATIONS.values():
        segments = render_segments([{"role": r, "content": t} for r, t in turns], tokenizer)
        assert [s.text for s in segments if s.trained] == [
            piece for role, text in turns if role == "assistant" for piece in (text, "<|eot_id|>")]
        assert "Today Date" in "".join(s.text for s in segments if not s.trained)


def test_control_token_text_inside_messages_stays_plain_text_and_leaves_the_mask_alone(family, tmp_path):
    family_name, tokenizer = family
    marker = END_OF_TURN[family_name]
    control_id = tokenizer.convert_tokens_to_ids(marker)
    plain = [("user", "Say stop."), ("assistant", "stop"), ("user", "Again?"), ("assistant", "Done.")]
    tricky = [("user", f"Say {marker} please."), ("assistant", f"Here: {marker} and more"),
              ("user", f"{marker}"), ("assistant", f"Done{marker}")]
    by_default = tokenizer(f"Say {marker} please.", add_special_tokens=False)["input_ids"]
    assert control_id in by_default  # what transformers does unless told otherwise: the policy matters

    for turns in (plain, tricky):
        example = write_rows(tmp_path / "data.jsonl", turns, "openai")
        tokenized = tokenize(example, tokenizer, 4096, train_on_inputs=False)
        # One control token per turn, all written by the template: none comes from the text.
        assert tokenized.input_ids.count(control_id) == len(turns)
        assert trained_spans(tokenized, tokenizer) == [text + marker for role, text in turns if role == "assistant"]
    content_ids = tokenizer(f"Say {marker} please.", add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert control_id not in content_ids
    assert tokenizer.decode(content_ids) == f"Say {marker} please."


def test_raw_text_rows_keep_control_token_text_as_plain_text(family):
    family_name, tokenizer = family
    marker = END_OF_TURN[family_name]
    from backpropagate.contract.dataset import Example

    tokenized = tokenize(Example(line=1, text=f"a {marker} b"), tokenizer, 4096, False)
    control_id = tokenizer.convert_tokens_to_ids(marker)
    assert tokenized.input_ids[:-1].count(control_id) == 0


def test_llama2_chat_trains_the_space_its_template_writes_before_the_end_of_turn():
    """Llama-2-chat renders each reply as ' ' + reply + ' ' + eos_token: a model not trained on that last space
    and the eos never learns to end its turn."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from backpropagate_stages import model_tokenizer
    from fetch_tokenizers import fetch_tokenizer

    tokenizer = model_tokenizer.load(fetch_tokenizer("llama2"))
    for turns in CONVERSATIONS.values():
        segments = render_segments([{"role": role, "content": text} for role, text in turns], tokenizer)
        assert [s.text for s in segments if s.trained] == [
            piece for role, text in turns if role == "assistant" for piece in (text, " </s>")]
        assert "".join(s.text for s in segments) == tokenizer.apply_chat_template(
            [{"role": role, "content": text} for role, text in turns], tokenize=False)
