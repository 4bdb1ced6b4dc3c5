"""`backprop export --format merged` and `Trainer.export("merged")`, from a run id, a run folder or an adapter."""

import json

import torch
from backpropagate.contract.history import RunHistory
from transformers import AutoModelForCausalLM

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def trained_run(model, output):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--device", "cpu", "--steps", "2",
                     "--checkpoint-every", "0", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["result"]


def test_export_merged_from_a_run_id_prefix_records_it_on_the_run(tiny_model, tmp_path):
    run = trained_run(tiny_model, tmp_path)
    result = run_cli("export", run["run_id"][:8], "--format", "merged", "--output", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.splitlines()[-1])["result"]
    merged = tmp_path / run["run_id"] / "merged"
    assert outputs["merged"] == str(merged) and outputs["dtype"] == "float16"
    assert AutoModelForCausalLM.from_pretrained(merged).dtype == torch.float16
    row = RunHistory(tmp_path).find(run["run_id"])
    assert row.merged == str(merged) and row.status == "completed"


def test_export_accepts_a_bare_adapter_folder_and_makes_a_run_for_it(tiny_model, tmp_path):
    run = trained_run(tiny_model, tmp_path / "train")
    adapter = tmp_path / "my-adapter"
    (tmp_path / "train" / run["run_id"] / "adapter").rename(adapter)
    result = run_cli("export", str(adapter), "--dtype", "float32", "--output", str(tmp_path / "exports"), "--json")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.splitlines()[-1])["result"]
    rows = RunHistory(tmp_path / "exports").rows()
    assert [(r.stage, r.status) for r in rows] == [("export", "completed")]
    assert outputs["merged"] == str(tmp_path / "exports" / rows[0].run_id / "merged")


def test_exporting_a_run_without_an_adapter_is_refused(tiny_model, tmp_path):
    failed = run_cli("train", "--data", str(QUICKSTART), "--model", str(tiny_model), "--steps", "1",
                     "--output", str(tmp_path))  # no GPU and no --device cpu: fails before training
    run_id = RunHistory(tmp_path).rows()[0].run_id
    assert failed.returncode == 4
    result = run_cli("export", run_id, "--output", str(tmp_path))
    assert result.returncode == 6
    assert result.stderr.startswith(f"[STATE_NO_ADAPTER]: run {run_id} has no adapter")


def test_the_python_api_exports_the_run_it_trained(tiny_model, tmp_path):
    from backpropagate import Trainer

    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    trainer.train(QUICKSTART, steps=2)
    exported = trainer.export("merged")
    assert exported.path == tmp_path / trainer.last_result.run_id / "merged"
    assert (exported.path / "config.json").exists()
