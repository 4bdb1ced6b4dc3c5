"""How much of fact set A a model keeps after learning fact set B: SLAO against sequential LoRA
(`--merge none`) and a fresh adapter per run, on a real model, through the real CLI.

    python scripts/bench_forgetting.py --model models/smollm2-135m-instruct --steps 12 --lock /tmp/heavy.lock

Fact sets (examples/forgetting/): 8 made-up facts each, three training phrasings per fact;
`*_eval.jsonl` is a fourth, unseen phrasing with its answer (the held-out loss) and `*_prompts.jsonl`
the same question with the text the answer must contain (accuracy: greedy answers that contain it).

- slao and none: `backprop multi-run --data A --data B --merge slao|none`, with each set's eval data
  and prompts, so the campaign measures its merged adapter after run 1 on A and after run 2 on A and B.
- fresh: `backprop train --data B` from the base (a new adapter for run 2), then `backprop eval` of
  that run on A. Its run 1 is the same ordinary LoRA run on A as the campaigns' run 1 (same seed,
  data and flags; the script checks that the two campaigns' run-1 adapters are equal), so its
  "after run 1" figures are theirs.

Each CLI command takes --lock (flock) on its own, so the lock is released between commands.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "examples" / "forgetting"
# The quickstart's LoRA flags; batch 2 x accumulation 2 (the 24 rows of a set, packed into 256-token
# rows, are about 4 rows: each step sees the whole set) and a short warmup, to keep a run short on a CPU.
TRAINING = ("--device", "cpu", "--runtime", "local", "--lora-r", "16", "--lora-alpha", "32", "--learning-rate",
            "1e-3", "--max-seq-length", "256", "--batch-size", "2", "--gradient-accumulation", "2",
            "--warmup-steps", "2", "--eval-max-tokens", "24", "--checkpoint-every", "0")


def backprop(lock: str | None, *args: str) -> dict:
    command = [sys.executable, "-m", "backpropagate", *args, "--json"]
    if lock:
        command = ["flock", lock, *command]
    print("$", " ".join(command[-len(args) - 1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])["result"]


def data_flags(*sets: str) -> list[str]:
    flags = []
    for name in sets:
        flags += ["--data", str(FACTS / f"facts_{name}.jsonl")]
    for name in sets:
        flags += ["--eval-data", str(FACTS / f"facts_{name}_eval.jsonl")]
    for name in sets:
        flags += ["--eval-prompts", str(FACTS / f"facts_{name}_prompts.jsonl")]
    return flags


def figures(summary: dict) -> dict:
    """held-out loss and hits of the fine-tune from a quality summary (an eval result or a campaign's eval)."""
    loss = summary.get("eval_loss", summary.get("eval_loss_after"))
    base = summary.get("eval_loss_base", summary.get("eval_loss_before"))
    hits = summary["hits"]
    return {"loss": loss, "base_loss": base, "hits": hits["fine_tune"], "base_hits": hits["base"],
            "of": hits["expected"]}


def campaign(lock, model, steps, output, merge) -> dict:
    result = backprop(lock, "multi-run", *data_flags("a", "b"), "--merge", merge, "--model", model, "--steps",
                      str(steps), "--output", str(output), *TRAINING)
    evals = {(e["after_run"], e["on_run"]): figures(e) for e in result["evals"]}
    return {"a_after_1": evals[(1, 1)], "a_after_2": evals[(2, 1)], "b_after_2": evals[(2, 2)],
            "run_1": result["runs"][0]["run_id"], "output": str(output)}


def fresh(lock, model, steps, output) -> dict:
    trained = backprop(lock, "train", "--data", str(FACTS / "facts_b.jsonl"), "--eval-data",
                       str(FACTS / "facts_b_eval.jsonl"), "--eval-prompts", str(FACTS / "facts_b_prompts.jsonl"),
                       "--model", model, "--steps", str(steps), "--output", str(output), *TRAINING)
    on_a = backprop(lock, "eval", trained["run_id"], "--eval-data", str(FACTS / "facts_a_eval.jsonl"),
                    "--eval-prompts", str(FACTS / "facts_a_prompts.jsonl"), "--runtime", "local", "--output", str(output))
    return {"a_after_2": figures(on_a["quality"]),
            "b_after_2": figures(trained["quality"])}


def same_adapter(first: Path, second: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    a, b = load_file(first / "adapter_model.safetensors"), load_file(second / "adapter_model.safetensors")
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def table(results: dict) -> str:
    def cell(f: dict) -> str:
        return f"{f['hits']}/{f['of']}, loss {f['loss']:.3f}"

    base = results["slao"]["a_after_1"]
    lines = ["| method | A after run 1 | A after run 2 | B after run 2 |", "| --- | --- | --- | --- |",
             (f"| base model | {base['base_hits']}/{base['of']}, loss {base['base_loss']:.3f} | "
             f"{base['base_hits']}/{base['of']}, loss {base['base_loss']:.3f} | "
             f"{results['slao']['b_after_2']['base_hits']}/8, loss {results['slao']['b_after_2']['base_loss']:.3f} |")]
    for method in ("slao", "none", "fresh"):
        r = results[method]
        first = r.get("a_after_1", results["slao"]["a_after_1"])
        lines.append(f"| {method} | {cell(first)} | {cell(r['a_after_2'])} | {cell(r['b_after_2'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps of each run")
    parser.add_argument("--work", type=Path, default=ROOT / "output" / "bench_forgetting")
    parser.add_argument("--lock", help="flock this file around each CLI command (a shared machine)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for method in ("slao", "none"):
        results[method] = campaign(args.lock, args.model, args.steps, args.work / method, method)
        (args.work / "results.json").write_text(json.dumps(results, indent=1))
    results["fresh"] = fresh(args.lock, args.model, args.steps, args.work / "fresh")
    slao_run, none_run = (Path(results[m]["output"]) / results[m]["run_1"] / "adapter" for m in ("slao", "none"))
    results["run_1_shared"] = same_adapter(slao_run, none_run)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    print(f"\nrun 1 of slao and of none give the same adapter: {results['run_1_shared']}; "
          f"accuracy = greedy answers (24 tokens) containing the fact, held-out loss on the unseen phrasing; "
          f"{args.steps} steps per run")


if __name__ == "__main__":
    main()
