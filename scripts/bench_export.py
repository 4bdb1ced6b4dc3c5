"""What the GGUF export adds on top of llama.cpp itself, in one run.

    python scripts/bench_export.py                    # ~0.7 GB fp16 Llama-shaped model, q4_k_m, 3 rounds
    python scripts/bench_export.py --layers 16 --rounds 5 --json

Builds a synthetic Llama-architecture model (random fp16 weights, the tiny model's
SentencePiece tokenizer) in a temp folder and times, each in fresh processes:

- direct: llama.cpp's convert_hf_to_gguf.py to f16, then llama_model_quantize;
- ours: the gguf stage (`python -m backpropagate_stages.gguf --spec ...`, no verification),
  which runs the same two steps plus its checks, the space-prefix fix, the artifact's sha256,
  the manifest and atomic publishing.

Both get the same conditions: the order alternates each round, and before every timed run
the other side's outputs are deleted and the page cache's dirty pages are written out
(os.sync, not timed). Without that, whichever runs second pays for writing back the first
one's gigabytes while it converts. Reported: the median of each side over the rounds.
Verification is left out of both: it is extra work by design, timed in the stage's events.
The aim: the wrapper adds at most 10%.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_QUANTIZE = """
import ctypes, sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def build_model(folder: Path, tokenizer_dir: Path, hidden: int, intermediate: int, layers: int) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = json.loads((tokenizer_dir / "config.json").read_text())
    config.update(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                  num_attention_heads=hidden // 128, num_key_value_heads=hidden // 128)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"}))
    model.half().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "generation_config.json"):
        shutil.copy2(tokenizer_dir / name, folder / name)
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def clean_slate(work: Path) -> None:
    """Delete both sides' outputs, then write out what is still dirty, so no run pays for another."""
    for file in work.glob("direct*.gguf"):
        file.unlink()
    shutil.rmtree(work / "run", ignore_errors=True)
    os.sync()


def run_direct(work: Path, quantization: str) -> tuple[float, float]:
    from backpropagate_stages.gguf.llama_tools import FTYPES, tools_dir

    clean_slate(work)
    convert = timed([sys.executable, str(tools_dir() / "convert_hf_to_gguf.py"), str(work / "model"),
                     "--outfile", str(work / "direct-f16.gguf"), "--outtype", "f16"])
    quantize = timed([sys.executable, "-c", _QUANTIZE, str(work / "direct-f16.gguf"),
                      str(work / "direct.gguf"), FTYPES[quantization]])
    return convert, quantize


def run_ours(work: Path, quantization: str) -> float:
    clean_slate(work)
    spec = work / "run" / "gguf.spec.json"
    spec.parent.mkdir()
    spec.write_text(json.dumps({"run_id": "bench", "run_dir": str(spec.parent), "merged": str(work / "model"),
                                "quantization": quantization, "verify": False}))
    return timed([sys.executable, "-m", "backpropagate_stages.gguf", "--spec", str(spec)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=5632)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--quantization", default="q4_k_m", choices=["q4_k_m", "q5_k_m", "q6_k", "q4_0", "q5_0"])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides, order alternating")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    converts, quantizes, directs, ours = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        work = Path(scratch)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama", "--out",
                        str(work / "tiny"), "--pretrain-steps", "0"], check=True, capture_output=True)
        size = build_model(work / "model", work / "tiny", args.hidden, args.intermediate, args.layers)
        for round_ in range(args.rounds):
            if round_ % 2:
                ours.append(run_ours(work, args.quantization))
            convert, quantize = run_direct(work, args.quantization)
            converts.append(convert)
            quantizes.append(quantize)
            directs.append(convert + quantize)
            if not round_ % 2:
                ours.append(run_ours(work, args.quantization))

    direct, wrapped = statistics.median(directs), statistics.median(ours)
    figures = {"model_bytes": size, "quantization": args.quantization, "rounds": args.rounds,
               "direct_convert_s": round(statistics.median(converts), 2),
               "direct_quantize_s": round(statistics.median(quantizes), 2), "direct_s": round(direct, 2),
               "ours_s": round(wrapped, 2), "overhead": round(wrapped / direct - 1, 3),
               "direct_rounds_s": [round(t, 2) for t in directs], "ours_rounds_s": [round(t, 2) for t in ours]}
    if args.json:
        print(json.dumps(figures))
        return
    print(f"model {size / 2**20:,.0f} MB fp16 -> {args.quantization}, medians of {args.rounds} rounds")
    print(f"direct   convert {figures['direct_convert_s']:6.2f} s + quantize {figures['direct_quantize_s']:6.2f} s"
          f" = {direct:6.2f} s   rounds {figures['direct_rounds_s']}")
    print(f"ours     gguf stage (no verify)              {wrapped:6.2f} s   ({figures['overhead']:+.1%})"
          f"   rounds {figures['ours_rounds_s']}")


if __name__ == "__main__":
    main()
