"""Operator commands on real runs of the tiny model: list, show (with a plot), diff, replay, export."""

import csv
import io
import json

import pytest
from backpropagate.contract.files import sha256_file

from tests.conftest import ROOT, run_cli
from tests.web_ui import serve_ui

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def train(model, output, *flags):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--device", "cpu", "--output",
                     str(output), "--json", "--steps", "4", "--checkpoint-every", "2", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["result"]


@pytest.fixture(scope="module")
def workspace(tiny_model, tmp_path_factory):
    """Two completed runs that differ in learning rate and rank, and one that failed."""
    output = tmp_path_factory.mktemp("workspace")
    first = train(tiny_model, output, "--learning-rate", "1e-3")
    second = train(tiny_model, output, "--learning-rate", "5e-4", "--lora-r", "8")
    failed = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--output", str(output),
                     "--device", "cpu", "--steps", "4", "--learning-rate", "1e20", "--warmup-steps", "0",
                     "--lr-scheduler", "constant")  # the loss becomes nan at step 2: RUNTIME_TRAINING_DIVERGED
    assert failed.returncode == 5
    return output, first, second


def cli_json(*args):
    """A command's --json result: the last line (training commands print their events before it)."""
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["result"]


def test_list_runs_shows_newest_first_and_filters(workspace, tiny_model):
    output, first, second = workspace
    runs = cli_json("list-runs", "--output", str(output))["runs"]
    assert [r["status"] for r in runs] == ["failed", "completed", "completed"]
    assert [r["run_id"] for r in runs[1:]] == [second["run_id"], first["run_id"]]
    completed = cli_json("list-runs", "--output", str(output), "--status", "completed", "--limit", "1")["runs"]
    assert [r["run_id"] for r in completed] == [second["run_id"]]
    assert cli_json("list-runs", "--output", str(output), "--model", "no-such-model")["runs"] == []
    table = run_cli("list-runs", "--output", str(output)).stdout.splitlines()
    assert table[0].split() == ["run", "status", "model", "dataset", "steps", "final", "loss", "duration",
                                "runtime", "started"]
    assert table[2].startswith(second["run_id"][:8]) and "tiny-llama" in table[2] and "local" in table[2]


def test_show_run_reports_every_recorded_field_and_the_curve(workspace):
    output, first, _ = workspace
    shown = cli_json("show-run", first["run_id"][:6], "--output", str(output))
    assert shown["row"]["status"] == "completed" and shown["row"]["dataset_sha256"]
    assert shown["spec"]["training"]["learning_rate"] == 1e-3
    assert shown["manifest"]["versions"]["peft"] and shown["manifest"]["artifacts"][0]["kind"] == "adapter"
    assert shown["checkpoints"] == ["step-2"]
    assert [loss for _, loss in shown["losses"]] == pytest.approx(first["losses"])
    text = run_cli("show-run", first["run_id"], "--output", str(output)).stdout
    assert f"run {first['run_id']}  completed" in text and "training.learning_rate" in text
    assert "steps 1-4" in text and "█" in text


def test_show_run_plot_writes_a_real_png_of_the_curve(workspace, tmp_path):
    output, first, _ = workspace
    png = tmp_path / "curve.png"
    shown = cli_json("show-run", first["run_id"], "--output", str(output), "--plot", str(png))
    assert shown["plot"] == str(png)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (450, 800)
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert (pixels[..., 2] > pixels[..., 0] + 0.3).any()  # some blue: the loss line


def test_diff_runs_lists_what_differs_and_both_final_losses(workspace):
    output, first, second = workspace
    diff = cli_json("diff-runs", first["run_id"], second["run_id"], "--output", str(output))
    assert diff["differences"]["training.learning_rate"] == [1e-3, 5e-4]
    assert diff["differences"]["lora.r"] == [16, 8]
    assert "model" not in diff["differences"] and "data.sha256" not in diff["differences"]
    assert diff["final_loss"] == pytest.approx([first["final_loss"], second["final_loss"]])


def test_the_ui_compare_page_shows_the_diff_runs_fields_and_both_curves(workspace, browser, tmp_path):
    output, first, second = workspace
    diff = cli_json("diff-runs", first["run_id"], second["run_id"], "--output", str(output))
    with serve_ui(tmp_path, "--output", str(output)) as url:  # this machine only: no login
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{url}/compare?a={first['run_id'][:6]}&b={second['run_id'][:6]}")
        fields = page.eval_on_selector_all("#differences tr.field", "rows => rows.map(r => r.dataset.field)")
        assert fields == [key for key in diff["differences"] if key != "final_loss"]
        rate = page.inner_text("#differences tr[data-field='training.learning_rate']").split("\t")
        assert rate == ["training.learning_rate", "0.001", "0.0005"]
        final = page.inner_text("#final-loss").split("\t")[1:]
        assert [float(x) for x in final] == pytest.approx(diff["final_loss"], abs=1e-4)
        curves = page.eval_on_selector_all("#compare-chart polyline.curve",
                                           "lines => lines.map(l => [l.dataset.run, l.points.numberOfItems])")
        assert curves == [[first["run_id"], 4], [second["run_id"], 4]]
        page.set_viewport_size({"width": 390, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_replay_repeats_the_loss_curve_of_the_original(workspace):
    output, first, _ = workspace
    replayed = cli_json("replay", first["run_id"], "--output", str(output))
    assert replayed["run_id"] != first["run_id"]
    assert replayed["losses"] == first["losses"]
    row = cli_json("show-run", replayed["run_id"], "--output", str(output))["row"]
    assert row["replay_of"] == first["run_id"]


def test_replay_refuses_a_changed_dataset_unless_allowed(tiny_model, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(QUICKSTART.read_bytes())
    result = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--device", "cpu", "--output",
                     str(tmp_path / "out"), "--json", "--steps", "1")
    run_id = json.loads(result.stdout.splitlines()[-1])["result"]["run_id"]
    data.write_text(data.read_text() + QUICKSTART.read_text().splitlines()[0] + "\n")
    refused = run_cli("replay", run_id, "--output", str(tmp_path / "out"))
    assert refused.returncode == 3
    old, new = sha256_file(QUICKSTART)[:12], sha256_file(data)[:12]
    assert refused.stderr.splitlines() == [
        f"[INPUT_DATASET_CHANGED]: dataset {data} has changed since run {run_id} (sha256 {old} then, {new} now)",
        "  fix: restore the file, or pass --allow-changed-data to replay on it as it is now",
    ]
    allowed = run_cli("replay", run_id, "--allow-changed-data", "--steps", "1", "--output", str(tmp_path / "out"))
    assert allowed.returncode == 0, allowed.stderr


def test_export_runs_as_jsonl_and_csv(workspace, tmp_path):
    output, first, second = workspace
    lines = run_cli("export-runs", "--output", str(output)).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert {first["run_id"], second["run_id"]} <= {r["run_id"] for r in rows}
    target = tmp_path / "runs.csv"
    result = run_cli("export-runs", "--format", "csv", "--out", str(target), "--output", str(output))
    assert result.returncode == 0
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["run_id"] for r in table] == [r["run_id"] for r in rows]
    assert float(next(r for r in table if r["run_id"] == first["run_id"])["final_loss"]) == \
        pytest.approx(first["final_loss"])


@pytest.mark.parametrize("command", [["list-runs"], ["show-run", "abc"], ["diff-runs", "a", "b"],
                                     ["replay", "abc"], ["export-runs"], ["resume", "abc"]])
def test_every_history_command_reports_a_corrupt_history_and_keeps_the_file(tmp_path, command):
    history = tmp_path / "run_history.json"
    history.write_text('{"version": 1, "runs": [')
    result = run_cli(*command, "--output", str(tmp_path))
    assert result.returncode == 6
    assert result.stderr.startswith(f"[STATE_HISTORY_CORRUPT]: run history {history}")
    assert history.read_text() == '{"version": 1, "runs": ['
    assert list(tmp_path.glob("run_history.json.corrupt-*"))


def test_a_prefix_matching_several_runs_lists_them(tmp_path):
    (tmp_path / "run_history.json").write_text(json.dumps(
        {"version": 1, "runs": [{"run_id": "abc-1", "status": "completed"}, {"run_id": "abd-2", "status": "failed"}]}))
    result = run_cli("show-run", "ab", "--output", str(tmp_path))
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == "[INPUT_RUN_AMBIGUOUS]: 'ab' matches 2 runs: abc-1, abd-2"
    assert run_cli("show-run", "", "--output", str(tmp_path)).returncode == 3  # empty matches nothing
