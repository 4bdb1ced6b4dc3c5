"""What the CLI prints for people: numbers rounded (JSON keeps them whole), one wording for null, no field
twice, a compact quality table, the engine's problem said once, and the next command to run."""

import json

from backpropagate.commands._quality import quality_table
from backpropagate.contract.history import HistoryRow, RunHistory
from backpropagate.contract.quality import Answered, QualityReport
from backpropagate.output import for_people

from tests.conftest import run_cli


def recorded_run(output, run_id: str, loss: float, rate: float, preset) -> None:
    """A finished run as the history and its spec.json record it (no stage needed to read it back)."""
    folder = output / run_id
    folder.mkdir(parents=True)
    spec = {"run_id": run_id, "training": {"steps": 30, "learning_rate": rate, "checkpoint_on_interrupt": False},
            "lora": {"r": 16, "preset": preset}}
    (folder / "spec.json").write_text(json.dumps(spec))
    RunHistory(output).append(HistoryRow(run_id=run_id, status="completed", model="tiny", steps=30, steps_done=30,
                                         final_loss=loss, duration_s=35.391234, run_dir=str(folder)))


def test_numbers_for_people_are_rounded_and_null_is_written_one_way():
    assert [for_people(v) for v in (11.070411443710327, 0.0002, 2.5e-05, 0.0, 1.0)] == \
        ["11.0704", "0.0002", "2.5e-05", "0", "1"]
    assert [for_people(v) for v in (None, False, "cosine", 16)] == ["null", "false", '"cosine"', "16"]


def test_show_run_rounds_for_people_and_json_keeps_full_precision(tmp_path):
    recorded_run(tmp_path, "aaaa1111", 11.070411443710327, 0.0002, None)
    shown = run_cli("show-run", "aaaa", "--output", str(tmp_path)).stdout
    assert "  final_loss      11.0704\n" in shown and "  duration_s      35.3912\n" in shown
    assert "  training.checkpoint_on_interrupt  false\n" in shown and "  lora.preset" in shown
    data = json.loads(run_cli("show-run", "aaaa", "--output", str(tmp_path), "--json").stdout)["result"]
    assert data["row"]["final_loss"] == 11.070411443710327


def test_diff_runs_shows_each_field_once_and_null_as_show_run_does(tmp_path):
    recorded_run(tmp_path, "aaaa1111", 11.070411443710327, 0.0002, None)
    recorded_run(tmp_path, "bbbb2222", 10.942812, 0.001, "fast")
    lines = run_cli("diff-runs", "aaaa", "bbbb", "--output", str(tmp_path)).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["field", "lora.preset", "training.learning_rate", "final"]
    assert lines[1].split() == ["lora.preset", "null", '"fast"']
    assert lines[-1].split() == ["final", "loss", "11.0704", "10.9428"]


def test_the_quality_table_is_one_line_per_model():
    report = QualityReport(eval_source="held out", eval_examples=5, eval_loss=[[0, 2.345678], [30, 1.23456]],
                           answers=[Answered(prompt="Capital of France?", expect="Paris", base="Lyon",
                                             fine_tune="Paris", gguf={"model-q8_0.gguf": "Paris."}),
                                    Answered(prompt="Say hi", expect="hi", base="hi", fine_tune="hi there",
                                             gguf={"model-q8_0.gguf": "hello"})])
    assert quality_table(report) == [
        "model                 held-out loss  hits of 2",
        "base                  2.3457         1",
        "fine-tune             1.2346         2",
        "gguf model-q8_0.gguf  -              1",
    ]
    assert quality_table(QualityReport()) == []


def test_info_says_what_is_wrong_with_the_docker_engine_once_in_a_sentence(tmp_path):
    result = run_cli("info", "--output", str(tmp_path), env={"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("its socket does not exist: no engine is started there") == 1
    assert "FileNotFoundError" not in result.stdout and "Connection aborted" not in result.stdout
    assert "  docker        unavailable: no Docker engine answers (see docker below)\n" in result.stdout


def test_a_campaign_ends_with_the_export_to_run_next(capsys, tmp_path):
    from backpropagate.commands.multi_run import report
    from backpropagate.output import Output
    from backpropagate.runs.campaign import CampaignResult

    result = CampaignResult(campaign_id="7c1d0000-aaaa", campaign_dir=tmp_path, adapter_path=tmp_path / "adapter",
                            runs=[{"index": 1, "run_id": "r1", "final_loss": 1.234567, "merge_lambda": 1.0}])
    report(Output(), result, " --output ws")
    assert capsys.readouterr().out.splitlines()[-1] == "next: backprop export 7c1d0000 --output ws --format gguf"
