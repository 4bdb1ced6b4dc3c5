"""Peak memory of one training step with the chunked loss against full logits, on a 152k-vocabulary model.

    python scripts/bench_loss_memory.py                          # Qwen3 tokenizer, sequence 2048, batch 4
    python scripts/bench_loss_memory.py --batch 1 --json

Builds the tiny Qwen3-tokenizer model (make_tiny_model.py --tokenizer qwen3) unless --model is given, puts
a LoRA adapter on it, and runs one forward and backward pass over a batch in which every position carries
loss (the worst case), twice, each in a fresh process:

- chunked: the train stage's loss (train/loop.py token_losses);
- full: the model's logits for the whole batch, then cross-entropy, as most trainers do.

Each process reports the growth of its peak RSS over the step, measured from just before it (model, adapter
and batch already in memory), so what is compared is the step alone. Needs the `local` extra; the full
variant at batch 4 needs about 20 GB.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step_peak_mb(model_dir: str, variant: str, seq: int, batch: int) -> dict:
    """Runs in the child: one LoRA training step; returns the peak RSS growth over it, in MB."""
    import torch
    import torch.nn.functional as F
    from backpropagate_stages.train.data import Batch
    from backpropagate_stages.train.loop import token_losses
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(r=16, target_modules="all-linear"))
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    data = Batch(ids, ids.clone(), torch.arange(seq).expand(batch, seq), batch * seq)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "chunked":
        loss = token_losses(model, data, "cpu").sum() / data.target_tokens
    else:
        logits = model(input_ids=data.input_ids, position_ids=data.position_ids, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), data.labels[:, 1:].flatten())
    loss.backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "loss": round(loss.item(), 5), "step_peak_mb": round((after - before) / 1024, 1),
            "process_peak_mb": round(after / 1024, 1)}


def measure(model_dir: Path, variant: str, seq: int, batch: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); from bench_loss_memory import "
            f"step_peak_mb; print(json.dumps(step_peak_mb({str(model_dir)!r}, {variant!r}, {seq}, {batch})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return {"variant": variant, "error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: build the Qwen3-tokenizer tiny model)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        model = args.model
        if model is None:
            model = Path(work) / "tiny-qwen3"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--tokenizer", "qwen3",
                            "--out", str(model)], check=True, capture_output=True)
        chunked, full = (measure(model, variant, args.seq, args.batch) for variant in ("chunked", "full"))
    report = {"seq": args.seq, "batch": args.batch, "chunked": chunked, "full": full}
    if "error" not in chunked and "error" not in full:
        report["step_peak_ratio"] = round(chunked["step_peak_mb"] / full["step_peak_mb"], 3)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"one LoRA step, sequence {args.seq} x batch {args.batch}, every position trained")
    for row in (chunked, full):
        shown = row.get("error") or (f"step peak +{row['step_peak_mb']:,.0f} MB "
                                     f"(process {row['process_peak_mb']:,.0f} MB), loss {row['loss']}")
        print(f"  {row['variant']:8s} {shown}")
    if "step_peak_ratio" in report:
        print(f"  chunked / full: {report['step_peak_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
