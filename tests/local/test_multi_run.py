"""Multi-run campaigns on the tiny model, through the real CLI: what SLAO deploys, what export makes of
it, and a campaign whose host and stage are killed together in run 2, then continued.

Each campaign here is 3 runs of 4 steps (about 8 s a run on 2 cores, most of it the stage starting).
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from backpropagate.contract.events import parse_line
from backpropagate.contract.history import RunHistory
from safetensors.torch import load_file

from tests.conftest import run_cli
from tests.local.test_resilience import chat_data  # noqa: F401  (the fixture: 40 short conversations)

COMMON = ("--device", "cpu", "--max-seq-length", "64", "--batch-size", "2", "--gradient-accumulation", "2",
          "--checkpoint-every", "2", "--keep-checkpoints", "10", "--learning-rate", "1e-3", "--lora-r", "4",
          "--lora-alpha", "8", "--steps", "4")


def campaign_args(model, data, output, *more):
    return ("multi-run", "--data", str(data), "--runs", "3", "--samples", "12", "--model", str(model),
            "--output", str(output), "--json", *COMMON, *more)


def campaign_row(output):
    return next(row for row in RunHistory(output).rows() if row.stage == "campaign")


def weights(folder):
    return {name: tensor.double().numpy() for name, tensor in load_file(folder / "adapter_model.safetensors").items()}


@pytest.fixture(scope="module")
def campaign(tiny_model, chat_data, tmp_path_factory):  # noqa: F811
    """The reference: an uninterrupted 3-run SLAO campaign."""
    output = tmp_path_factory.mktemp("campaign")
    result = run_cli(*campaign_args(tiny_model, chat_data, output))
    assert result.returncode == 0, result.stderr
    return output, campaign_row(output), json.loads(result.stdout.splitlines()[-1])["result"]


def test_a_campaign_deploys_b_merge_and_a_merge_computed_from_its_runs_fine_tuned_adapters(campaign):
    output, row, summary = campaign
    history = RunHistory(output)
    runs = [history.get(run_id) for run_id in row.campaign_runs]
    assert [run.campaign_index for run in runs] == [1, 2, 3]
    assert [run.parent_run for run in runs] == [None, runs[0].run_id, runs[1].run_id]
    manifests = [json.loads((output / run.run_id / "manifest.json").read_text()) for run in runs]
    assert [m["parent_run"] for m in manifests] == [None, runs[0].run_id, runs[1].run_id]
    assert {a["kind"] for a in manifests[1]["artifacts"]} == {"adapter", "merged_adapter"}
    assert [run.merge_lambda for run in runs] == pytest.approx([1.0, 2 ** -0.5, 3 ** -0.5])
    assert {run.campaign for run in runs} == {row.run_id} and row.status == "completed"
    assert [r["run_id"] for r in summary["runs"]] == row.campaign_runs

    fine_tuned = [weights(output / run.run_id / "adapter") for run in runs]
    b_merge = None
    for i, ft in enumerate(fine_tuned, start=1):  # B_merge,i = B_merge,i-1 + (B_ft,i - B_merge,i-1) / sqrt(i)
        b = {k: v for k, v in ft.items() if ".lora_B." in k}
        b_merge = b if b_merge is None else {k: b_merge[k] + (b[k] - b_merge[k]) / np.sqrt(i) for k in b}
    deployed = weights(output / row.run_id / "adapter")
    assert deployed.keys() == fine_tuned[-1].keys()
    for name, tensor in deployed.items():
        expected = b_merge[name] if ".lora_B." in name else fine_tuned[-1][name]  # A_merge = A_ft,3
        np.testing.assert_allclose(tensor, expected, atol=1e-6, rtol=1e-5)
    assert not np.allclose(deployed[next(k for k in deployed if ".lora_B." in k)],
                           fine_tuned[-1][next(k for k in deployed if ".lora_B." in k)])  # not the raw last run


def test_run_two_starts_from_the_qr_basis_of_run_ones_a_and_run_ones_fine_tuned_b(campaign, tiny_model):
    from backpropagate.contract.settings import LoraSettings, TrainingSettings
    from backpropagate.contract.specs import CampaignStep
    from backpropagate_stages.train import continual, model
    from peft import get_peft_model_state_dict

    output, row, _ = campaign
    first = output / row.campaign_runs[0] / "adapter"
    lora = LoraSettings(r=4, alpha=8)
    lora_model = model.load_lora_model(str(tiny_model), lora, TrainingSettings(device="cpu"), torch.device("cpu"),
                                       model.Backend("peft", "test"))
    continual.start_from_parent(lora_model, CampaignStep(campaign_id=row.run_id, index=2, parent_adapter=str(first)))
    started = {k: v.double().numpy() for k, v in get_peft_model_state_dict(lora_model).items()}
    previous = weights(first)
    assert started.keys() == previous.keys()
    for name, a in previous.items():
        if ".lora_B." in name:
            np.testing.assert_array_equal(started[name], a)
            continue
        q, r = np.linalg.qr(a.T, mode="reduced")
        expected = (q * np.where(np.diag(r) < 0, -1.0, 1.0)).T
        np.testing.assert_allclose(started[name], expected, atol=1e-5)
        np.testing.assert_allclose(started[name] @ started[name].T, np.eye(4), atol=1e-5)


def test_the_no_qr_ablation_starts_run_two_from_run_ones_adapter_as_it_is(campaign, tiny_model):
    from backpropagate.contract.settings import LoraSettings, TrainingSettings
    from backpropagate.contract.specs import CampaignStep
    from backpropagate_stages.train import continual, model
    from peft import get_peft_model_state_dict

    output, row, _ = campaign
    first = output / row.campaign_runs[0] / "adapter"
    lora_model = model.load_lora_model(str(tiny_model), LoraSettings(r=4, alpha=8), TrainingSettings(device="cpu"),
                                       torch.device("cpu"), model.Backend("peft", "test"))
    continual.start_from_parent(lora_model, CampaignStep(campaign_id=row.run_id, index=2, merge="slao-no-qr",
                                                         parent_adapter=str(first)))
    started = {k: v.double().numpy() for k, v in get_peft_model_state_dict(lora_model).items()}
    previous = weights(first)
    assert started.keys() == previous.keys()
    for name, tensor in previous.items():
        np.testing.assert_array_equal(started[name], tensor)


def test_the_mean_ablation_records_lambda_one_over_i_and_deploys_the_mean_of_its_runs_b(
        tiny_model, chat_data, tmp_path):  # noqa: F811
    result = run_cli(*campaign_args(tiny_model, chat_data, tmp_path, "--merge", "slao-mean", "--replay", "0"))
    assert result.returncode == 0, result.stderr
    row = campaign_row(tmp_path)
    history = RunHistory(tmp_path)
    runs = [history.get(run_id) for run_id in row.campaign_runs]
    assert row.merge == "slao-mean" and {run.merge for run in runs} == {"slao-mean"}
    assert [run.merge_lambda for run in runs] == pytest.approx([1.0, 1 / 2, 1 / 3])
    fine_tuned = [weights(tmp_path / run.run_id / "adapter") for run in runs]
    deployed = weights(tmp_path / row.run_id / "adapter")
    for name, tensor in deployed.items():
        expected = (np.mean([ft[name] for ft in fine_tuned], axis=0) if ".lora_B." in name
                    else fine_tuned[-1][name])
        np.testing.assert_allclose(tensor, expected, atol=1e-6, rtol=1e-5)


def test_exporting_a_campaign_merges_w0_plus_alpha_over_r_times_b_merge_a_merge(campaign, tiny_model):
    output, row, _ = campaign
    result = run_cli("export", row.run_id[:8], "--format", "merged", "--dtype", "float32", "--output", str(output))
    assert result.returncode == 0, result.stderr
    merged = {}
    for shard in (output / row.run_id / "merged").glob("*.safetensors"):
        merged |= load_file(shard)
    base = {}
    for shard in tiny_model.glob("*.safetensors"):
        base |= load_file(shard)
    adapter = weights(output / row.run_id / "adapter")
    checked = 0
    for name, a in adapter.items():
        if ".lora_A." not in name:
            continue
        b = adapter[name.replace(".lora_A.", ".lora_B.")]
        layer = name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        expected = base[layer].double().numpy() + (8 / 4) * b @ a
        np.testing.assert_allclose(merged[layer].double().numpy(), expected, atol=1e-5)
        checked += 1
    assert checked > 0
    assert RunHistory(output).get(row.run_id).merged == str(output / row.run_id / "merged")


def test_list_runs_and_show_run_show_the_campaign_and_its_runs_with_lambda(campaign):
    output, row, _ = campaign
    listing = run_cli("list-runs", "--output", str(output))
    assert f"{row.run_id[:8]} campaign of 3" in listing.stdout
    assert f"run 2 of {row.run_id[:8]}" in listing.stdout
    shown = run_cli("show-run", row.run_id[:8], "--output", str(output))
    assert shown.returncode == 0, shown.stderr
    assert f"campaign {row.run_id}  completed" in shown.stdout
    assert f"  2  {row.campaign_runs[1]}  completed" in shown.stdout and "lambda 0.7071" in shown.stdout
    assert "steps 1-12" in shown.stdout  # the three runs' 4 steps one after another


def _kill_during_run_two(args) -> str:
    """Start the campaign in a session of its own; kill -9 its whole process group (host and stage)
    when run 2 has written its first checkpoint. Returns the campaign id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_")} | {"BACKPROPAGATE_RUNTIME":
                                                                                          "local"}
    process = subprocess.Popen([sys.executable, "-m", "backpropagate", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
    run_ids = []
    try:
        for line in process.stdout:
            if '"event"' not in line:
                continue
            envelope = parse_line(line)
            if envelope.run_id not in run_ids and envelope.event.name == "started":
                run_ids.append(envelope.run_id)
            if len(run_ids) == 2 and envelope.event.name == "checkpoint":
                os.killpg(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and len(run_ids) == 2
    return run_ids[1]


@pytest.mark.parametrize("way", ["resume", "multi-run --resume", "multi-run again"])
def test_a_campaign_killed_with_its_stage_in_run_two_continues_to_the_same_merged_adapter(
        campaign, tiny_model, chat_data, tmp_path, way):  # noqa: F811
    args = campaign_args(tiny_model, chat_data, tmp_path)
    second = _kill_during_run_two(args)
    row = campaign_row(tmp_path)
    assert row.status == "running" and RunHistory(tmp_path).get(second).status == "running"  # nobody closed them

    if way == "resume":
        from filelock import FileLock

        with FileLock(str(tmp_path / row.run_id / "campaign.lock")):  # as if the campaign were still running
            busy = run_cli("resume", row.run_id[:8], "--output", str(tmp_path))
        assert busy.returncode == 6
        assert f"[STATE_CAMPAIGN_BUSY]: campaign {row.run_id} is being run by another process (it holds" in busy.stderr
        assert "wait for that process to finish, or stop it and run `backprop resume" in busy.stderr
        result = run_cli("resume", row.run_id[:8], "--output", str(tmp_path), "--json")
    elif way == "multi-run --resume":
        result = run_cli("multi-run", "--resume", row.run_id[:8], "--output", str(tmp_path), "--json")
    else:
        result = run_cli(*args)
        assert f"continuing the unfinished campaign {row.run_id}" in result.stderr
    assert result.returncode == 0, result.stderr
    events = [parse_line(line) for line in result.stdout.splitlines() if '"event"' in line]
    trained = {e.run_id for e in events if e.event.name == "progress"}
    assert row.campaign_runs[0] not in trained  # run 1 was kept, not trained again
    assert any(e.run_id == second and e.event.name == "resumed" and e.event.reason == "from checkpoint step-2"
               for e in events)

    reference_output, reference, _ = campaign
    ours = weights(tmp_path / row.run_id / "adapter")
    theirs = weights(reference_output / reference.run_id / "adapter")
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-5, rtol=1e-4)
    finished = RunHistory(tmp_path).get(row.run_id)
    assert finished.status == "completed" and finished.campaign_runs[:2] == [row.campaign_runs[0], second]
    assert RunHistory(tmp_path).get(second).status == "completed"


def test_a_completed_campaign_cannot_be_resumed(campaign):
    output, row, _ = campaign
    result = run_cli("resume", row.run_id[:8], "--output", str(output))
    assert result.returncode == 6
    assert f"[STATE_NOTHING_TO_RESUME]: run {row.run_id} is completed" in result.stderr


def two_sets_with_held_out_rows(chat_data, folder):
    """Sets A and B (12 rows each) and 4 held-out rows of each, cut from the chat data: [a, a_eval, b, b_eval]."""
    rows = chat_data.read_text().splitlines()
    files = []
    for name, part in (("a", rows[:12]), ("a_eval", rows[12:16]), ("b", rows[16:28]), ("b_eval", rows[28:32])):
        files.append(folder / f"{name}.jsonl")
        files[-1].write_text("\n".join(part) + "\n")
    return files


def test_the_python_api_runs_a_campaign_and_measures_each_merge_on_every_earlier_runs_held_out_data(
        tiny_model, chat_data, tmp_path):  # noqa: F811
    from backpropagate import Trainer

    files = two_sets_with_held_out_rows(chat_data, tmp_path)
    trainer = Trainer(str(tiny_model), output=tmp_path / "out", device="cpu", max_seq_length=64, batch_size=2,
                      gradient_accumulation=2, checkpoint_every=0, learning_rate=1e-3, progress=False)
    result = trainer.multi_run([files[0], files[2]], steps_per_run=3, eval_data=[files[1], files[3]])
    assert [run["index"] for run in result.runs] == [1, 2]
    assert [(e["after_run"], e["on_run"]) for e in result.evals] == [(1, 1), (2, 1), (2, 2)]
    for figures in result.evals:
        assert figures["eval_loss"] < figures["eval_loss_base"]  # every merge learned something of each set
    after_two_on_one = next(e for e in result.evals if (e["after_run"], e["on_run"]) == (2, 1))
    assert after_two_on_one["eval_loss_base"] == next(e for e in result.evals if e["after_run"] == 1)["eval_loss_base"]
    assert (tmp_path / "out" / result.campaign_id / "evals" / "after-2" / "on-1" / "quality.json").exists()
    exported = trainer.export("merged", run=result.campaign_id, dtype="float32")
    assert exported.path == tmp_path / "out" / result.campaign_id / "merged"


def test_a_replaying_campaign_killed_in_run_two_resumes_on_the_same_replayed_rows_and_records_them(
        tiny_model, chat_data, tmp_path):  # noqa: F811
    from backpropagate.contract.campaign import CampaignFolder
    from backpropagate.contract.files import sha256_file
    from backpropagate.contract.specs import read_run_spec
    from backpropagate.options import settings_from_arguments
    from backpropagate.runs.campaign_plan import plan_campaign

    args = campaign_args(tiny_model, chat_data, tmp_path / "out", "--replay", "0.5", "--merge", "none")
    second = _kill_during_run_two(args)
    row = campaign_row(tmp_path / "out")
    result = run_cli("resume", row.run_id[:8], "--output", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr

    # The same campaign planned afresh, without training: the seed alone decides the replayed rows.
    settings = settings_from_arguments({"model": str(tiny_model), "output": str(tmp_path / "fresh"),
                                        "replay_fraction": 0.5}, call="Trainer.multi_run()", campaign=True)
    _, fresh, _ = plan_campaign(settings, [chat_data], 3, 12, "none")
    ours = CampaignFolder.of(tmp_path / "out", row.run_id)
    history = RunHistory(tmp_path / "out")
    runs = [history.get(run_id) for run_id in history.get(row.run_id).campaign_runs]
    assert runs[1].run_id == second and [run.status for run in runs] == ["completed"] * 3
    for index, run in enumerate(runs, start=1):
        assert ours.run_data(index).read_bytes() == fresh.run_data(index).read_bytes()
        spec = read_run_spec(tmp_path / "out" / run.run_id / "spec.json", tmp_path / "out" / run.run_id, run.run_id)
        assert spec.data.sha256 == sha256_file(ours.run_data(index)) == run.dataset_sha256  # what it trained on
    assert ours.run_replayed(3).read_text() == fresh.run_replayed(3).read_text()
    assert [run.replayed for run in runs] == [
        None, {"fraction": 0.5, "own_rows": 12, "rows": 6, "from_runs": {"1": 6}},
        {"fraction": 0.5, "own_rows": 12, "rows": 6, "from_runs": {"1": 3, "2": 3}}]
    assert [run.merge for run in runs] == ["none"] * 3


@pytest.fixture(scope="module")
def evaluated_campaign(tiny_model, chat_data, tmp_path_factory):  # noqa: F811
    """A 2-run SLAO campaign with replay, each run with its held-out rows and two prompts, in a web UI's folder."""
    folder = tmp_path_factory.mktemp("evaluated")
    files = two_sets_with_held_out_rows(chat_data, folder)
    prompts = []
    # The tiny model answers these with a sentence that starts "The" (the rest of it depends on how the CPU that
    # pretrained it rounds): run 1's prompts are answered, run 2's never.
    for name, expect in (("a", "the"), ("b", "zebra")):
        prompts.append(folder / f"{name}_prompts.jsonl")
        prompts[-1].write_text("".join(json.dumps({"prompt": f"{i}: red cat?", "expect": expect}) + "\n"
                                       for i in range(2)))
    output = folder / "ui"
    result = run_cli("multi-run", "--data", str(files[0]), "--data", str(files[2]), "--model", str(tiny_model),
                     "--output", str(output), "--json", *COMMON[:-1], "3", "--checkpoint-every", "0",
                     "--eval-max-tokens", "8", "--replay", "0.5", "--eval-data", str(files[1]), "--eval-data",
                     str(files[3]), "--eval-prompts", str(prompts[0]), "--eval-prompts", str(prompts[1]))
    assert result.returncode == 0, result.stderr
    return output, campaign_row(output), json.loads(result.stdout.splitlines()[-1])["result"]


def test_each_run_of_a_replaying_slao_campaign_is_evaluated_on_every_earlier_runs_prompts(evaluated_campaign):
    output, row, summary = evaluated_campaign
    assert [(e["after_run"], e["on_run"]) for e in row.campaign_evals] == [(1, 1), (2, 1), (2, 2)]
    assert all(e["hits"]["expected"] == 2 for e in row.campaign_evals)
    second = RunHistory(output).get(row.campaign_runs[1])
    assert row.merge == "slao" and second.replayed == {"fraction": 0.5, "own_rows": 12, "rows": 6,
                                                       "from_runs": {"1": 6}}
    matrix = summary["matrix"]
    assert matrix["accuracy"][0][1] is None and matrix["eval_loss"][0][1] is None  # run 2 not yet trained
    assert matrix["accuracy"] == [[1.0, None], [1.0, 0.0]] and matrix["hits"] == [["2/2", None], ["2/2", "0/2"]]
    assert matrix["acc"] == 0.5 and matrix["bwt"] == 0.0  # the mean of the last row; run 1 kept after run 2
    for after, on in ((0, 0), (1, 0), (1, 1)):
        evaluated = next(e for e in row.campaign_evals if (e["after_run"], e["on_run"]) == (after + 1, on + 1))
        assert matrix["accuracy"][after][on] == evaluated["hits"]["fine_tune"] / 2
        assert matrix["eval_loss"][after][on] == evaluated["eval_loss"]


def test_show_run_gives_the_campaigns_accuracy_matrix_as_json_text_a_heatmap_png_and_on_its_ui_page(
        evaluated_campaign, tmp_path):
    output, row, summary = evaluated_campaign
    shown = run_cli("show-run", row.run_id[:8], "--output", str(output), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout.splitlines()[-1])["result"]
    assert data["matrix"] == summary["matrix"]  # one record, read the same by multi-run and show-run
    text = run_cli("show-run", row.run_id[:8], "--output", str(output)).stdout
    assert "accuracy on run j's prompts (columns) after run i (rows):" in text
    assert "          on 1  on 2\n  after 1   2/2      \n  after 2   2/2   0/2\nACC 0.5000  BWT +0.0000" in text
    assert "replayed 6 rows of earlier runs" in text
    assert "after run 2, on run 2's held-out data: " in text and "right 0/2 (base 0/2)" in text

    plot = tmp_path / "campaign.png"
    drawn = run_cli("show-run", row.run_id[:8], "--output", str(output), "--plot", str(plot))
    assert drawn.returncode == 0, drawn.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(plot) as image:
        assert image.size == (1100, 450)  # two panels: the accuracy heatmap and the held-out losses
    folder = tmp_path / "a-folder"
    folder.mkdir()
    refused = run_cli("show-run", row.run_id[:8], "--output", str(output), "--plot", str(folder))
    assert refused.returncode == 2 and refused.stderr.startswith(  # only a regular file the user named
        f"[CONFIG_OUTPUT_NOT_A_FILE]: --plot {folder} is not written: it is a folder")

    from backpropagate.ui.app import UiConfig, create_app
    from backpropagate.ui.sandbox import Sandbox
    from starlette.testclient import TestClient

    page = TestClient(create_app(UiConfig(sandbox=Sandbox(output), credentials=None))).get(
        f"/campaigns/{row.run_id}").text
    table = page.split('<table id="campaign-accuracy"')[1].split("</table>")[0]
    assert table.count('class="cell"') == 3 and table.count('class="empty"') == 1
    assert 'data-accuracy="0.0" style="--shade: 1.0">0/2</td>' in table and table.count(">2/2</td>") == 2
    assert '<table id="campaign-heatmap"' in page and "6 of runs 1" in page
