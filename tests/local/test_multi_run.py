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
