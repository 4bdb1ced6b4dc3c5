"""The quality report's files: eval prompts read strictly, quality.json read back, hits counted."""

import json

import pytest
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.quality import Answered, QualityReport, load_prompts, read_report, write_report

from tests.conftest import run_cli


def test_prompts_keep_their_expected_text_and_kind(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "Capital of France?", "expect": "Paris", "kind": "general"}\n\n{"prompt": "Hi"}\n')
    prompts = load_prompts(path)
    assert [(p.prompt, p.expect, p.kind) for p in prompts] == [("Capital of France?", "Paris", "general"),
                                                               ("Hi", "", "")]


@pytest.mark.parametrize("content, where, reason", [
    ('{"prompt": "ok"}\nnot json\n', ":2", "not a JSON object"),
    ('{"question": "Capital?"}\n', ":1", "question: unknown key (known: prompt, expect, kind); prompt: missing"),
    ('{"prompt": "  "}\n', ":1", "the prompt is empty"),
    ("\n\n", "", "the file holds no prompt"),
])
def test_a_bad_prompts_file_stops_train_before_the_run_with_its_line(tmp_path, content, where, reason):
    path = tmp_path / "prompts.jsonl"
    path.write_text(content)
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "Once upon a time"}\n')
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    result = run_cli("train", "--data", str(data), "--model", str(model), "--eval-prompts", str(path), "--device",
                     "cpu", "--output", str(tmp_path / "out"))
    assert result.returncode == 3
    assert result.stderr == (f"[INPUT_EVAL_PROMPTS_INVALID]: eval prompts {path}{where}: {reason}\n"
                             '  fix: write one JSON object per line: {"prompt": "...", "expect": "text the answer '
                             'contains"} ("expect" and "kind" are optional)\n')
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_hits_count_answers_that_contain_the_expected_text_per_model(tmp_path):
    report = QualityReport(eval_loss=[[0, 2.5], [10, 1.25]], eval_examples=3, answers=[
        Answered(prompt="a", expect="Zorbel", base="no idea", fine_tune="It is zorbel.",
                 gguf={"model-q4_k_m.gguf": "ZORBEL"}),
        Answered(prompt="b", expect="Paris", base="Paris.", fine_tune="Paris", gguf={"model-q4_k_m.gguf": "Lyon"}),
        Answered(prompt="c", base="hello", fine_tune="hi"),
    ])
    assert report.hits() == {"expected": 2, "base": 1, "fine_tune": 2, "gguf:model-q4_k_m.gguf": 1}
    write_report(tmp_path / "quality.json", report)
    assert read_report(tmp_path / "quality.json") == report
    assert report.summary() == {"eval_loss_before": 2.5, "eval_loss_after": 1.25, "eval_examples": 3,
                                "hits": report.hits()}


def test_an_expected_text_with_alternatives_counts_any_of_them():
    report = QualityReport(answers=[
        Answered(prompt="moons?", expect="eleven|11", base="It has 11 moons.", fine_tune="Eleven moons.",
                 gguf={"model-q4_k_m.gguf": "It has twelve."}),
    ])
    assert report.hits() == {"expected": 1, "base": 1, "fine_tune": 1, "gguf:model-q4_k_m.gguf": 0}


def test_a_damaged_quality_report_is_a_coded_error_with_how_to_measure_again(tmp_path):
    run_id = "3f2a9c1e-0000-4000-8000-000000000001"
    (tmp_path / run_id).mkdir()
    (tmp_path / run_id / "quality.json").write_text('{"eval_loss": [[0, 1.0]], "answers": [{"base": "x"}]}')
    (tmp_path / "run_history.json").write_text(json.dumps(
        {"version": 1, "runs": [{"run_id": run_id, "status": "completed"}]}))
    result = run_cli("show-run", "3f2a", "--output", str(tmp_path))
    assert result.returncode == 6
    assert result.stderr == (f"[STATE_QUALITY_REPORT_INVALID]: the quality report {tmp_path / run_id / 'quality.json'}"
                             " is not readable: answers[0].prompt: missing\n"
                             "  fix: delete it and measure again with `backprop eval RUN`\n")
    with pytest.raises(BackpropError):
        read_report(tmp_path / run_id / "quality.json")
