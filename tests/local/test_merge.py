"""The streaming merge equals PEFT's merge_and_unload, on the tiny Llama and Qwen2 models."""

import json
import subprocess
import sys

import pytest
import torch
from backpropagate.contract.events import parse_line
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "examples" / "quickstart.jsonl"


def make_model(arch, folder):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", arch, "--out",
                    str(folder), "--pretrain-steps", "20"], check=True, capture_output=True)
    return folder


def train_adapter(model, output, *flags):
    result = run_cli("train", "--data", str(QUICKSTART), "--model", str(model), "--device", "cpu", "--steps", "3",
                     "--learning-rate", "5e-3", "--checkpoint-every", "0", "--output", str(output), "--json", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["result"]


def merge(run_dir, base, adapter, dtype="float32"):
    spec = run_dir / "merge.spec.json"
    spec.write_text(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir), "base_model": str(base),
                                "adapter": str(adapter), "dtype": dtype}))
    result = subprocess.run([sys.executable, "-m", "backpropagate_stages.merge", "--spec", str(spec)],
                            capture_output=True, text=True)
    return result, [parse_line(line) for line in result.stdout.splitlines()]


def merged_state(folder):
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    return state


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def base(request, tmp_path_factory):
    return make_model(request.param, tmp_path_factory.mktemp("base") / request.param)


@pytest.mark.parametrize("flags", [(), ("--dora",)], ids=["lora", "dora"])
def test_streaming_merge_equals_peft_merge_and_unload(base, tmp_path, flags):
    trained = train_adapter(base, tmp_path, *flags)
    run_dir = tmp_path / trained["run_id"]
    result, events = merge(run_dir, base, trained["adapter"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert events[-1].event.status == "completed"

    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                          trained["adapter"]).merge_and_unload().state_dict()
    ours = merged_state(run_dir / "merged")
    assert set(ours) == set(reference)
    worst = max((ours[name] - reference[name]).abs().max().item() for name in ours)
    assert worst <= 1e-6
    changed = [n for n in ours if not torch.equal(ours[n], load_file(base / "model.safetensors")[n])]
    assert changed, "the adapter changed nothing: the comparison would prove nothing"


def test_the_merged_folder_loads_with_transformers_and_keeps_the_tokenizer(base, tmp_path):
    trained = train_adapter(base, tmp_path)
    run_dir = tmp_path / trained["run_id"]
    result, _ = merge(run_dir, base, trained["adapter"], dtype="float16")
    assert result.returncode == 0, result.stdout + result.stderr
    merged = run_dir / "merged"
    assert (merged / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert model.dtype == torch.float16
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(base).chat_template
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {a["kind"] for a in manifest["artifacts"]} == {"adapter", "merged"}


def test_a_sharded_base_is_merged_shard_by_shard_into_shards(base, tmp_path):
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(base).save_pretrained(sharded, max_shard_size="500KB")
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        (sharded / name).write_bytes((base / name).read_bytes())
    trained = train_adapter(sharded, tmp_path)
    run_dir = tmp_path / trained["run_id"]
    result, events = merge(run_dir, sharded, trained["adapter"])
    assert result.returncode == 0, result.stdout + result.stderr
    shards = sorted(p.name for p in (run_dir / "merged").glob("*.safetensors"))
    assert len(shards) > 1
    index = json.loads((run_dir / "merged" / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == shards
    progress = [e.event.value for e in events if e.event.name == "metric" and e.event.key == "merge_shard"]
    assert len(progress) == len(shards)
    AutoModelForCausalLM.from_pretrained(run_dir / "merged")


def test_an_adapter_for_another_model_is_refused_and_leaves_nothing(base, tmp_path):
    trained = train_adapter(base, tmp_path, "--lora-targets", "q_proj")
    adapter = tmp_path / trained["run_id"] / "adapter"
    weights = load_file(adapter / "adapter_model.safetensors")
    renamed = {k.replace("q_proj", "x_proj"): v for k, v in weights.items()}
    from safetensors.torch import save_file

    save_file(renamed, adapter / "adapter_model.safetensors")
    run_dir = tmp_path / trained["run_id"]
    result, events = merge(run_dir, base, adapter)
    assert result.returncode == 3
    error = events[-2].event
    assert error.code == "INPUT_ADAPTER_MISMATCH"
    assert error.message.startswith(f"adapter {adapter} changes weights that base model {base} does not have: ")
    assert "x_proj" in error.message.split(" does not have: ")[1]
    assert error.fix == ("merge it into the model it was trained on "
                         "(see base_model_name_or_path in adapter_config.json)")
    assert not (run_dir / "merged").exists() and not (run_dir / "merged.partial").exists()


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_a_fan_in_fan_out_weight_merges_as_peft_merges_it(dora):
    """GPT-2 stores its projections as Conv1D, [in, out]: the adapter's B @ A goes in transposed."""
    from backpropagate_stages.merge.streaming import AdapterConfig, LoraPair, merge_weight
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=16))
    original = model.transformer.h[0].attn.c_attn.weight.detach().clone()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                                  use_dora=dora))
    layer = peft_model.base_model.model.transformer.h[0].attn.c_attn
    torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    magnitude = layer.lora_magnitude_vector["default"].weight.detach().clone() * 1.5 if dora else None
    if dora:
        layer.lora_magnitude_vector["default"].weight.data.copy_(magnitude)
    pair = LoraPair(layer.lora_A["default"].weight.detach().clone(), layer.lora_B["default"].weight.detach().clone(),
                    magnitude)

    ours = merge_weight(original, pair, AdapterConfig(r=4, alpha=8, rslora=False, dora=dora, fan_in_fan_out=True))
    reference = peft_model.merge_and_unload().transformer.h[0].attn.c_attn.weight.detach()
    assert (ours - reference).abs().max().item() <= 1e-6
    assert not torch.allclose(reference, original), "the adapter changed nothing: the comparison would prove nothing"
