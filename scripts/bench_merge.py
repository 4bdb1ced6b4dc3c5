"""Peak memory and time of the streaming merge against PEFT's merge_and_unload, in one run.

    python scripts/bench_merge.py                    # ~1.1 GB fp16 Llama-shaped model in 4 shards
    python scripts/bench_merge.py --layers 16 --shards 8 --json

Builds a synthetic Llama-architecture base (random fp16 weights, several safetensors
shards) and a LoRA adapter on every linear layer in a temp folder, then merges it
twice, each in a fresh process whose peak RSS the kernel reports (wait4):

- ours: the merge stage, `python -m backpropagate_stages.merge --spec ...`;
- PEFT: from_pretrained, PeftModel.from_pretrained, merge_and_unload, save_pretrained.

Two more processes only import, giving the floors they start from: the merge
stage's modules (torch, safetensors), and torch, transformers and peft. The aim:
the streaming merge peaks at no more than 1.5x the largest shard.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

_PEFT_MERGE = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
base, adapter, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float16)
PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(out)
"""
_IMPORTS_ONLY = "import torch, transformers, peft, safetensors"
_STAGE_IMPORTS_ONLY = "import backpropagate_stages.merge.run"


def build_base(folder: Path, hidden: int, intermediate: int, layers: int, vocab: int, shards: int) -> dict:
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=hidden // 128, num_key_value_heads=hidden // 128, vocab_size=vocab,
                         tie_word_embeddings=False)
    folder.mkdir(parents=True)
    config.save_pretrained(folder)
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (hidden, hidden),
                   p + "self_attn.v_proj.weight": (hidden, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                   p + "mlp.gate_proj.weight": (intermediate, hidden), p + "mlp.up_proj.weight": (intermediate, hidden),
                   p + "mlp.down_proj.weight": (hidden, intermediate), p + "input_layernorm.weight": (hidden,),
                   p + "post_attention_layernorm.weight": (hidden,)}
    names = list(shapes)
    per_shard = -(-len(names) // shards)
    weight_map, sizes = {}, []
    generator = torch.Generator().manual_seed(0)
    for number in range(shards):
        file = f"model-{number + 1:05d}-of-{shards:05d}.safetensors"
        chunk = {n: (torch.randn(shapes[n], generator=generator) * 0.02).half()
                 for n in names[number * per_shard:(number + 1) * per_shard]}
        save_file(chunk, folder / file, metadata={"format": "pt"})
        weight_map |= {n: file for n in chunk}
        sizes.append((folder / file).stat().st_size)
        del chunk
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return {"bytes": sum(sizes), "largest_shard": max(sizes), "shards": shards, "parameters": sum(
        __import__("math").prod(s) for s in shapes.values())}


def build_adapter(folder: Path, base: Path, hidden: int, intermediate: int, layers: int, rank: int) -> None:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    dims = {"q_proj": (hidden, hidden), "k_proj": (hidden, hidden), "v_proj": (hidden, hidden),
            "o_proj": (hidden, hidden), "gate_proj": (intermediate, hidden), "up_proj": (intermediate, hidden),
            "down_proj": (hidden, intermediate)}
    tensors = {}
    for i in range(layers):
        for name, (out_features, in_features) in dims.items():
            block = "self_attn" if name.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            prefix = f"base_model.model.model.layers.{i}.{block}.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, in_features) * 0.01
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(out_features, rank) * 0.01
    save_file(tensors, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
        "target_modules": list(TARGETS), "base_model_name_or_path": str(base), "bias": "none",
        "fan_in_fan_out": False, "use_dora": False, "use_rslora": False}))


def measure(command: list[str]) -> dict:
    """Wall time and peak resident memory of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[:4]} failed:\n{process.stderr.read().decode()[-2000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_bytes": usage.ru_maxrss * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=5632)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into:
        # Run as a child: a process's peak RSS survives fork and exec, so the parent that
        # launches the measured processes must never hold the model itself.
        model = build_base(args.build_into / "base", args.hidden, args.intermediate, args.layers, args.vocab,
                           args.shards)
        build_adapter(args.build_into / "adapter", args.build_into / "base", args.hidden, args.intermediate,
                      args.layers, args.rank)
        print(json.dumps(model))
        return

    with tempfile.TemporaryDirectory(prefix="bench-merge-") as scratch:
        work = Path(scratch)
        built = subprocess.run([sys.executable, __file__, "--build-into", str(work), *sys.argv[1:]],
                               capture_output=True, text=True, check=True)
        model = json.loads(built.stdout.strip().splitlines()[-1])
        spec = work / "run" / "merge.spec.json"
        spec.parent.mkdir()
        spec.write_text(json.dumps({"run_id": "bench", "run_dir": str(spec.parent), "base_model": str(work / "base"),
                                    "adapter": str(work / "adapter"), "dtype": "float16"}))
        stage_floor = measure([sys.executable, "-c", _STAGE_IMPORTS_ONLY])
        floor = measure([sys.executable, "-c", _IMPORTS_ONLY])
        ours = measure([sys.executable, "-m", "backpropagate_stages.merge", "--spec", str(spec)])
        peft = measure([sys.executable, "-c", _PEFT_MERGE, str(work / "base"), str(work / "adapter"),
                        str(work / "peft-merged")])

    shard = model["largest_shard"]
    figures = {"model": model, "stage_imports_only": stage_floor, "imports_only": floor, "streaming": ours,
               "peft_merge_and_unload": peft,
               "streaming_peak_over_largest_shard": round(ours["peak_rss_bytes"] / shard, 2),
               "peft_peak_over_largest_shard": round(peft["peak_rss_bytes"] / shard, 2),
               "peft_over_streaming_peak": round(peft["peak_rss_bytes"] / ours["peak_rss_bytes"], 2)}
    if args.json:
        print(json.dumps(figures))
        return
    mb = 2**20
    print(f"model {model['bytes'] / mb:,.0f} MB fp16 in {model['shards']} shards (largest {shard / mb:,.0f} MB), "
          f"{model['parameters'] / 1e6:,.0f}M parameters, LoRA r{args.rank} on {len(TARGETS)} projections")
    for name, run in (("stage imports only", stage_floor), ("streaming merge", ours),
                      ("torch+transformers+peft", floor), ("PEFT merge_and_unload", peft)):
        print(f"{name:24} peak RSS {run['peak_rss_bytes'] / mb:8,.0f} MB  "
              f"({run['peak_rss_bytes'] / shard:4.2f}x largest shard)  {run['seconds']:6.1f} s")
    print(f"PEFT peak / streaming peak: {figures['peft_over_streaming_peak']}x")


if __name__ == "__main__":
    main()
