"""`backprop export --format merged` and `Trainer.export("merged")`, from a run id, a run folder or an adapter."""

import json
import shutil

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
                     "--device", "cpu", "--output", str(tmp_path),
                     env={"BACKPROP_FAULTS": json.dumps({"raise_at_step": [1, "a failure before any adapter"]})})
    run_id = RunHistory(tmp_path).rows()[0].run_id
    assert failed.returncode != 0 and "a failure before any adapter" in failed.stderr
    assert not (tmp_path / run_id / "adapter").exists()
    result = run_cli("export", run_id, "--output", str(tmp_path))
    assert result.returncode == 6
    assert result.stderr.splitlines() == [
        f"[STATE_NO_ADAPTER]: run {run_id} has no adapter in {tmp_path / run_id}",
        "  fix: export a run that completed (`backprop list-runs --status completed`), or resume this one",
    ]


def test_merging_onto_a_base_saved_as_pytorch_bin_is_refused_with_how_to_convert_it(tiny_model, tmp_path):
    from safetensors.torch import load_file

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    trained = run_cli("train", "--data", str(QUICKSTART), "--model", str(base), "--device", "cpu", "--steps", "1",
                      "--checkpoint-every", "0", "--output", str(tmp_path / "runs"), "--json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout.splitlines()[-1])["result"]["run_id"]
    # The same weights in the legacy format: transformers 5 writes only safetensors, so torch.save
    # makes the pytorch_model.bin an older save_pretrained would have.
    torch.save(load_file(base / "model.safetensors"), base / "pytorch_model.bin")
    (base / "model.safetensors").unlink()
    result = run_cli("export", run_id, "--format", "merged", "--output", str(tmp_path / "runs"))
    assert result.returncode == 3
    assert result.stderr.splitlines()[-2:] == [
        f"[INPUT_MODEL_NOT_SAFETENSORS]: model {base} has no model.safetensors or model.safetensors.index.json",
        "  fix: load it with from_pretrained and save it again with save_pretrained, which writes model.safetensors",
    ]
    assert not (tmp_path / "runs" / run_id / "merged").exists()


def test_the_python_api_exports_the_run_it_trained(tiny_model, tmp_path):
    from backpropagate import Trainer

    trainer = Trainer(str(tiny_model), device="cpu", output=tmp_path, progress=False)
    trainer.train(QUICKSTART, steps=2)
    exported = trainer.export("merged")
    assert exported.path == tmp_path / trainer.last_result.run_id / "merged"
    assert (exported.path / "config.json").exists()
