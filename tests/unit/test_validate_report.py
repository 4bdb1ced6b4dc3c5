"""`backprop validate`'s token-length histogram and its --preview rule (the lengths themselves, on a real
tokenizer, are tested in tests/local/test_api.py)."""

from backpropagate.commands.validate import histogram

from tests.conftest import ROOT, run_cli


def test_the_histogram_covers_shortest_to_longest_in_equal_ranges_counting_each_length_once():
    lengths = sorted([20, 21, 21, 35, 49, 50, 119])
    bins = histogram(lengths, bins=10)
    assert [(b["low"], b["high"]) for b in bins][:2] == [(20, 29), (30, 39)] and bins[-1]["high"] >= 119
    assert all(b["high"] - b["low"] == 9 for b in bins) and len(bins) == 10
    assert [b["count"] for b in bins] == [3, 1, 1, 1, 0, 0, 0, 0, 0, 1]


def test_the_histogram_of_equal_lengths_is_one_bar():
    assert histogram([7, 7, 7]) == [{"low": 7, "high": 7, "count": 3}]


def test_preview_without_a_tokenizer_is_refused_with_the_flag_to_add():
    refused = run_cli("validate", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--preview", "2")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[:2] == [
        "[CONFIG_PREVIEW_NEEDS_TOKENIZER]: --preview shows rows as a model's chat template renders them, but no "
        "--tokenizer names the model",
        "  fix: add --tokenizer MODEL (a hub id or a model folder), or drop --preview"]
