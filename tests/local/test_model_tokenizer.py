"""The stages read text the way the model's own tokenizer.json does, also where transformers 5 rebuilds the pipeline
from the tokenizer's class (Llama 2's legacy SentencePiece prefix space)."""

import sys

from backpropagate_stages import model_tokenizer
from backpropagate_stages.gguf.parity import HARD_STRINGS
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from tests.conftest import ROOT


def family_folder(name):
    sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_tokenizers import fetch_tokenizer

    return fetch_tokenizer(name)


def pieces(tokenizer, text):
    return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_llama2_keeps_a_leading_space_as_a_token_of_its_own():
    folder = family_folder("llama2")
    tokenizer = model_tokenizer.load(folder)
    # As Llama 2's SentencePiece model and llama.cpp split them: the prefix space, then the text's own space.
    assert pieces(tokenizer, " Hello") == ["▁", "▁Hello"]
    assert pieces(tokenizer, " [/INST]") == ["▁", "▁[", "/", "INST", "]"]
    assert pieces(tokenizer, "Hello") == ["▁Hello"]
    # transformers alone fuses the text's space into the prefix.
    assert pieces(AutoTokenizer.from_pretrained(folder), " Hello") == ["▁Hello"]


def test_every_hard_string_gets_the_ids_of_llama2s_tokenizer_json():
    folder = family_folder("llama2")
    tokenizer = model_tokenizer.load(folder)
    shipped = Tokenizer.from_file(str(folder / "tokenizer.json"))
    shipped.encode_special_tokens = True  # data text: "<s>" is three characters, as the stages read it
    for text in HARD_STRINGS + ["  two leading spaces", " [/INST] ", "\nnewline first"]:
        assert tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == \
            shipped.encode(text, add_special_tokens=False).ids, text


def test_a_tokenizer_transformers_reads_as_shipped_is_left_as_it_is():
    folder = family_folder("llama3")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model_tokenizer.keep_shipped_pipeline(tokenizer, str(folder / "tokenizer.json")) == []
