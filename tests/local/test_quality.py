"""The quality report on the tiny model: held-out loss over training, answers of base, fine-tune and GGUF.

The tiny model learns nothing a person could check (the real-model tests do that); here the report's
mechanics are checked: when it measures, that the same measurement after the fact gives the same
figures, and that every place a user looks (the run's output, show-run, the history, --json) has it.
"""

import json

import pytest

from tests.conftest import ROOT, run_cli

DATA = ROOT / "examples" / "quickstart.jsonl"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text('{"prompt": "What do bees make?", "expect": "honey", "kind": "taught"}\n'
                    '{"prompt": "Name a colour.", "kind": "general"}\n')
    return path


@pytest.fixture(scope="module")
def measured(tiny_model, prompts, tmp_path_factory):
    """A 4-step run holding out a quarter of its rows, measured every 2 steps, with two prompts."""
    out = tmp_path_factory.mktemp("quality")
    result = run_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--steps", "4", "--device", "cpu",
                     "--max-seq-length", "256", "--eval-split", "0.25", "--eval-every", "2", "--eval-prompts",
                     str(prompts), "--eval-max-tokens", "8", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return out, lines[-1]["result"], lines[:-1]


def test_held_out_loss_is_measured_before_training_every_n_steps_and_after(measured):
    out, result, events = measured
    metrics = [(e["step"], e["value"]) for e in events if e["event"] == "metric" and e["key"] == "eval_loss"]
    assert [step for step, _ in metrics] == [0, 2, 4]
    report = json.loads((out / result["run_id"] / "quality.json").read_text())
    assert report["eval_loss"] == [list(point) for point in metrics]
    rows = len(DATA.read_text().splitlines())
    held = round(rows * 0.25)
    assert report["eval_examples"] == held and f"{held} of {rows} examples" in report["eval_source"]
    assert result["examples"] == rows - held  # the held-out examples are not trained on
    summary = result["quality"]
    assert (summary["eval_loss_before"], summary["eval_loss_after"]) == (metrics[0][1], metrics[-1][1])


def test_the_answers_stand_side_by_side_in_every_place_a_user_looks(measured):
    out, result, _ = measured
    report = json.loads((out / result["run_id"] / "quality.json").read_text())
    assert [a["prompt"] for a in report["answers"]] == ["What do bees make?", "Name a colour."]
    assert all(a["base"] and a["fine_tune"] for a in report["answers"])
    assert result["quality"]["hits"]["expected"] == 1
    shown = run_cli("show-run", result["run_id"], "--output", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "answers:" in shown.stdout and "What do bees make?" in shown.stdout
    assert "hits (answer contains the expected text), of 1: base " in shown.stdout
    record = json.loads(run_cli("show-run", result["run_id"], "--output", str(out), "--json").stdout)["result"]
    assert record["quality"]["eval_loss"] == report["eval_loss"]
    assert record["row"]["quality"] == result["quality"]
    runs = json.loads(run_cli("list-runs", "--output", str(out), "--json").stdout)["result"]["runs"]
    assert runs[0]["quality"]["eval_examples"] == report["eval_examples"]


def test_eval_after_the_fact_measures_what_training_measured(measured):
    out, result, _ = measured
    trained = json.loads((out / result["run_id"] / "quality.json").read_text())
    again = run_cli("eval", result["run_id"][:8], "--output", str(out), "--json")
    assert again.returncode == 0, again.stderr
    remeasured = json.loads((out / result["run_id"] / "quality.json").read_text())
    # The base (adapter off) is the run before its first step; the fine-tune is its last step.
    assert [step for step, _ in remeasured["eval_loss"]] == [0, 4]
    assert remeasured["eval_loss"][0][1] == pytest.approx(trained["eval_loss"][0][1], abs=1e-5)
    assert remeasured["eval_loss"][1][1] == pytest.approx(trained["eval_loss"][-1][1], abs=1e-5)
    assert [a["fine_tune"] for a in remeasured["answers"]] == [a["fine_tune"] for a in trained["answers"]]
    assert [a["base"] for a in remeasured["answers"]] == [a["base"] for a in trained["answers"]]


def test_the_exported_gguf_answers_the_same_prompts_beside_the_fine_tune(measured):
    out, result, _ = measured
    exported = run_cli("export", result["run_id"], "--format", "gguf", "--quantization", "q8_0", "--no-verify",
                       "--output", str(out), "--json")
    assert exported.returncode == 0, exported.stderr
    report = json.loads((out / result["run_id"] / "quality.json").read_text())
    assert all(set(a["gguf"]) == {"model-q8_0.gguf"} for a in report["answers"])
    assert all(a["fine_tune"] for a in report["answers"])  # kept from training
    outputs = json.loads(exported.stdout.splitlines()[-1])["result"]
    assert outputs["quality"]["hits"]["gguf:model-q8_0.gguf"] in (0, 1)
    shown = run_cli("show-run", result["run_id"], "--output", str(out)).stdout.split("answers:")[1].splitlines()
    assert shown[1] == "  What do bees make?  (expect: honey)"
    assert [line.split()[0] for line in shown[2:5]] == ["base", "fine-tune", "model-q8_0.gguf"]


def test_eval_data_with_eval_split_is_refused_before_anything_runs(tiny_model, prompts, tmp_path):
    result = run_cli("train", "--data", str(DATA), "--model", str(tiny_model), "--eval-data", str(DATA),
                     "--eval-split", "0.1", "--device", "cpu", "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("[CONFIG_VALUE_INVALID]: --eval-split=0.1 is not valid: --eval-data already gives the "
                             "held-out rows\n  fix: use 0 with --eval-data, or drop --eval-data to hold out part "
                             "of --data\n")
    assert list(tmp_path.iterdir()) == []
