"""`backprop plan`'s peak-memory estimate beside the measured peak RSS of real CPU training runs.

    python scripts/measure_plan.py                                  # tiny model and SmolLM2-135M, two lengths each
    python scripts/measure_plan.py --smollm2 models/smollm2-135m-instruct --lengths 256 512 --steps 3
    python scripts/measure_plan.py --lora-dropout 0 --smollm2-lengths 256   # LoRA without dropout

For each model and sequence length it runs the real train stage through the CLI (`backprop train
--device cpu --runtime local`) on a synthetic chat dataset whose packed rows fill the length, reads
the stage process's peak RSS (getrusage of the finished child processes: the largest of them is the
stage), asks `backprop plan --json` for its estimate with the same flags, and prints both with the
error. The tiny model is built with scripts/make_tiny_model.py; SmolLM2 comes from
scripts/fetch_model.py (its folder under models/ unless --smollm2 names another).

It is a measurement, not a test: run it on a quiet machine, and say in docs/measurements.md how
busy it was.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_train import make_dataset  # noqa: E402  (the benchmark's chat data: mixed lengths, packing fills rows)

FLAGS = ["--batch-size", "2", "--gradient-accumulation", "1", "--lora-r", "16", "--lora-targets", "all-linear"]
# The stage runs as a child of the CLI; the wrapper's finished children include it, and ru_maxrss of
# RUSAGE_CHILDREN is the largest peak among them (in KiB on Linux).
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(code)")


def measured_peak(model: Path, data: Path, length: int, steps: int, work: Path, flags: list[str]) -> int:
    command = [sys.executable, "-m", "backpropagate", "train", "--data", str(data), "--model", str(model),
               "--steps", str(steps), "--device", "cpu", "--runtime", "local", "--report-to", "none",
               "--checkpoint-every", "0", "--output", str(work / "runs"), "--json",
               "--max-seq-length", str(length), *flags]
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def planned(model: Path, length: int, flags: list[str]) -> dict:
    command = [sys.executable, "-m", "backpropagate", "plan", "--model", str(model), "--device", "cpu", "--json",
               "--max-seq-length", str(length), *flags]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2", type=Path, default=ROOT / "models" / "smollm2-135m-instruct")
    parser.add_argument("--tiny", type=Path, help="a tiny model folder (default: build one)")
    parser.add_argument("--lengths", type=int, nargs="*", default=[256, 1024])
    parser.add_argument("--smollm2-lengths", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lora-dropout", type=float, help="LoRA dropout for both (default: the setting's)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)

    flags = FLAGS + ([] if args.lora_dropout is None else ["--lora-dropout", str(args.lora_dropout)])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tiny = args.tiny
        if tiny is None:
            tiny = work / "tiny-llama"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama",
                            "--out", str(tiny)], check=True, capture_output=True)
        data = work / "chat.jsonl"
        make_dataset(data, examples=400, seed=0)
        cases = [("tiny-llama", tiny, length) for length in args.lengths]
        if (args.smollm2 / "config.json").is_file():
            cases += [("SmolLM2-135M", args.smollm2, length) for length in args.smollm2_lengths]
        else:
            print(f"no SmolLM2 at {args.smollm2} (python scripts/fetch_model.py): skipped", file=sys.stderr)
        rows = []
        for name, model, length in cases:
            rss = measured_peak(model, data, length, args.steps, work, flags)
            plan = planned(model, length, flags)
            error = (plan["peak_memory_bytes"] - rss) / rss
            rows.append({"model": name, "max_seq_length": length, "batch_size": 2, "lora_dropout": args.lora_dropout,
                         "measured_rss_bytes": rss,
                         "plan_bytes": plan["peak_memory_bytes"], "error": round(error, 4),
                         "breakdown_bytes": plan["breakdown_bytes"]})
            print(f"{name} @ {length}: measured {rss / 2**20:.0f} MiB, plan {plan['peak_memory_bytes'] / 2**20:.0f} "
                  f"MiB ({error:+.1%})", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"date": date.today().isoformat(), "machine": platform.platform(), "rows": rows}, indent=1))
    else:
        dropout = "default" if args.lora_dropout is None else f"{args.lora_dropout:g}"
        print("| model | batch x length | LoRA dropout | measured peak RSS | plan | error |\n"
              "| --- | --- | --- | --- | --- | --- |")
        for row in rows:
            print(f"| {row['model']} | 2 x {row['max_seq_length']} | {dropout} | "
                  f"{row['measured_rss_bytes'] / 2**20:,.0f} MiB | "
                  f"{row['plan_bytes'] / 2**20:,.0f} MiB | {row['error']:+.1%} |")
    worst = max(abs(row["error"]) for row in rows)
    return 0 if worst <= 0.15 else 1


if __name__ == "__main__":
    sys.exit(main())
