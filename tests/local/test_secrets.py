"""A token given inside a flag's value or a model id reaches the stage and no file in the workspace."""

import json
import shutil
import stat

from backpropagate.contract.specs import secrets_file

from tests.conftest import run_cli
from tests.unit.test_hostile_inputs import JSONL

HUB_TOKEN = "hf_" + "Zq3" * 10  # the shape of a Hugging Face token
KEY = "sk-" + "Xy7" * 8  # the shape of an OpenAI-style key


def _cached_as(tiny_model, hf_home, repo_id: str) -> None:
    """The tiny model as the hub cache keeps ``repo_id``: the only place that name can be loaded from."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_a_token_in_a_model_id_and_in_a_flag_value_is_used_by_the_stage_and_written_nowhere(tiny_model, tmp_path):
    model_id = f"org/tiny-{HUB_TOKEN}"
    _cached_as(tiny_model, tmp_path / "hf", model_id)
    data = tmp_path / "data.jsonl"
    data.write_text(JSONL)
    output = tmp_path / f"runs-{KEY}"  # the workspace itself, named in --output
    result = run_cli("train", "--data", str(data), "--model", model_id, "--output", str(output), "--device", "cpu",
                     "--steps", "1", "--report-to", "none",
                     env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    # The stage had the real values: it loaded the model only the real id names, and wrote into the real folder.
    run_dir = next(path.parent for path in output.glob("*/spec.json"))
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    written = [path for path in output.rglob("*") if path.is_file() and not path.is_symlink()]
    assert {"spec.json", "events.jsonl", "log.txt", "manifest.json", "run_history.json"} <= {p.name for p in written}
    leaking = [str(path.relative_to(output)) for path in written
               if HUB_TOKEN.encode() in path.read_bytes() or KEY.encode() in path.read_bytes()]
    assert leaking == []
    assert not secrets_file(run_dir / "spec.json").exists()  # the stage read it and removed it
    for text in (result.stdout, result.stderr):
        assert HUB_TOKEN not in text and KEY not in text
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["model"] == "org/tiny-***"
