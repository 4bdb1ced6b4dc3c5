"""A continual-learning benchmark of the product: four fact sets learned one run at a time, through the real CLI,
measured as the accuracy matrix, ACC and BWT of each method over task orders and seeds.

    python scripts/bench_continual.py --model models/smollm2-135m-instruct --lock /tmp/heavy.lock
    python scripts/bench_continual.py --setting paper --methods slao,none --orders abcd,dcba --seeds 0,1,2
    python scripts/bench_continual.py --model DIR --steps 2 --methods slao,fresh --orders abcd --seeds 0 --no-gguf

Tasks (examples/forgetting/): four sets of 8 made-up facts, three training phrasings per fact
(`facts_X.jsonl`); `facts_X_prompts.jsonl` asks each fact in a fourth, unseen phrasing with the text the
answer must contain (accuracy: greedy answers of 24 tokens that contain it), `facts_X_eval.jsonl` is that
phrasing with its answer (the held-out loss). A campaign learns them in a given order, one set per run.

Methods, each one function below:
- slao, none, slao-no-qr, slao-mean: `backprop multi-run --merge M --replay 0`, one method for each of
  multi-run's merges (none: one adapter trained on, sequential LoRA; slao-no-qr and slao-mean: the SLAO paper's
  two ablations, without the QR start and with lambda(i) = 1/i), measured by the campaign itself after every
  run on every set so far.
- M+replay for each: the same with `--replay FRACTION` of earlier runs' rows mixed into each run
  (slao+replay with the default 1.0 is multi-run's default recipe).
- fresh: a new adapter per run (`backprop train` on set i from the base), `backprop eval` of it on every earlier
  set; it forgets everything but the newest set: the lower bound.
- joint: run i trains from the base on sets 1..i in one file for i times the steps of a run (each set as many
  steps as its own run had): the upper bound.

a[i][j] is the accuracy on the j-th set learned after run i, j <= i, of the adapter the method deploys then
(a campaign's merged adapter, or run i's own); ACC and BWT come from the contract's `campaign_matrix`. The
deployed adapter after the last run is also exported to q4_k_m (`backprop export`) and asked every set's prompts
through `backprop chat` (skip with --no-gguf: the slow part).

Each (setting, method, order, seed) cell is written to WORK/<cell>.json as soon as it is measured, and its GGUF
figures added when they are; a rerun skips what is there, so a killed benchmark goes on where it stopped.
Each CLI command takes --lock (flock) on its own, so the lock is released between commands. --report measures
nothing: it writes the table of the cells already there (cells measured by several invocations or machines, copied
into one --work) and names the cells still missing.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.merges import MERGES

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "examples" / "forgetting"
TASKS = "abcd"
ANSWER_TOKENS = 24
# Batch 2 x accumulation 2 (the 24 rows of a set, packed into 256-token rows, are about 4 rows: each step sees
# the whole set) and a short warmup, to keep a run short on a CPU.
COMMON = ("--runtime", "local", "--max-seq-length", "256", "--batch-size", "2", "--gradient-accumulation", "2",
          "--warmup-steps", "2", "--eval-max-tokens", str(ANSWER_TOKENS), "--checkpoint-every", "0",
          "--report-to", "none")
SETTINGS = {
    # The quickstart's LoRA (docs/measurements.md): the defaults learn too slowly in 20 steps.
    "quickstart": {"steps": 20, "flags": ("--lora-r", "16", "--lora-alpha", "32", "--lora-targets", "all-linear",
                                          "--learning-rate", "1e-3")},
    # The SLAO paper's LoRA: rank 8 on the attention's query and value projections; its lower rate needs more steps.
    "paper": {"steps": 60, "flags": ("--lora-r", "8", "--lora-alpha", "16", "--lora-targets", "q_proj,v_proj",
                                     "--learning-rate", "1e-4")},
}


@dataclass(frozen=True)
class Bench:
    lock: str | None
    training: tuple  # model, device, setting and common flags of every train and multi-run
    steps: int  # of each run; joint's run i takes i times as many
    replay: float


def backprop(bench: Bench, *args: str) -> dict:
    command = [sys.executable, "-m", "backpropagate", *args, "--json"]
    if bench.lock:
        command = ["flock", bench.lock, *command]
    print("$", shlex.join(command[-len(args) - 1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])["result"]


def facts(task: str, kind: str = "") -> Path:
    return FACTS / f"facts_{task}{kind}.jsonl"


def eval_flags(*tasks: str) -> list[str]:
    return [flag for task in tasks for flag in ("--eval-data", str(facts(task, "_eval")))] + \
        [flag for task in tasks for flag in ("--eval-prompts", str(facts(task, "_prompts")))]


def campaign(bench: Bench, order: str, seed: int, out: Path, merge: str, replay: float = 0.0) -> dict:
    data = [flag for task in order for flag in ("--data", str(facts(task)))]
    # Always given: a campaign replays by default, and slao and none are the methods without it.
    result = backprop(bench, "multi-run", *data, *eval_flags(*order), "--merge", merge, "--replay", str(replay),
                      "--seed", str(seed), "--output", str(out), "--steps", str(bench.steps), *bench.training)
    return {"evals": result["evals"], "deployed": result["campaign_id"]}


def merge_method(merge: str, replay: bool):
    def method(bench, order, seed, out):
        return campaign(bench, order, seed, out, merge, bench.replay if replay else 0.0)
    return method


def fresh(bench, order, seed, out):
    return separate_adapters(bench, order, seed, out, [facts(task) for task in order], [bench.steps] * len(order))


def joint(bench, order, seed, out):
    files = []
    for i in range(1, len(order) + 1):
        rows = [line for task in order[:i] for line in facts(task).read_text().splitlines() if line.strip()]
        files.append(out / f"joint-{order[:i]}.jsonl")
        files[-1].write_text("\n".join(rows) + "\n")
    # i sets get i times the steps of one, as many as the campaigns spent on them: with the same steps as one set,
    # run 4 saw each fact a quarter as often as its own run did and learned little of any set.
    steps = [bench.steps * i for i in range(1, len(order) + 1)]
    return separate_adapters(bench, order, seed, out, files, steps)


def separate_adapters(bench: Bench, order: str, seed: int, out: Path, data: list[Path], steps: list[int]) -> dict:
    """Run i trains a new adapter from the base on data[i] for steps[i]; its training measures it on set i,
    `backprop eval` on every earlier set. Each measurement is shaped as a campaign's, for `campaign_matrix`."""
    evals = []
    for i, (task, rows, run_steps) in enumerate(zip(order, data, steps), 1):
        trained = backprop(bench, "train", "--data", str(rows), *eval_flags(task), "--seed", str(seed),
                           "--output", str(out), "--steps", str(run_steps), *bench.training)
        evals.append(measured(i, i, trained["quality"]))
        for j, earlier in enumerate(order[:i - 1], 1):
            asked = backprop(bench, "eval", trained["run_id"], *eval_flags(earlier), "--runtime", "local",
                             "--output", str(out))
            evals.append(measured(i, j, asked["quality"]))
    return {"evals": evals, "deployed": trained["run_id"]}


def measured(after: int, on: int, quality: dict) -> dict:
    # A training's summary names its final loss eval_loss_after, an eval's eval_loss.
    return {"after_run": after, "on_run": on, "hits": quality["hits"],
            "eval_loss": quality.get("eval_loss", quality.get("eval_loss_after"))}


RUN = {**{merge: merge_method(merge, replay=False) for merge in MERGES}, "fresh": fresh, "joint": joint,
       **{f"{merge}+replay": merge_method(merge, replay=True) for merge in MERGES}}
METHODS = tuple(RUN)


def gguf_accuracy(bench: Bench, order: str, out: Path, deployed: str) -> dict:
    """The deployed adapter as a q4_k_m GGUF, asked every set's prompts through `backprop chat`."""
    from backpropagate.contract.quality import hit

    # Unverified: the benchmark measures the GGUF by its answers, and a refused verification would leave no GGUF
    # to ask (scripts/measure_gguf_agreement.py measures the agreement itself).
    exported = backprop(bench, "export", deployed, "--format", "gguf", "--quantization", "q4_k_m", "--no-verify",
                        "--runtime", "local", "--output", str(out))
    accuracy = {}
    for task in order:
        prompts = [row for row in map(json.loads, facts(task, "_prompts").read_text().splitlines()) if row["expect"]]
        right = sum(hit(backprop(bench, "chat", exported["gguf"], "--prompt", row["prompt"], "--max-tokens",
                                 str(ANSWER_TOKENS))["answer"], row["expect"]) for row in prompts)
        accuracy[task] = round(right / len(prompts), 4)
    return {"accuracy": accuracy, "acc": round(statistics.mean(accuracy.values()), 4), "file": exported["gguf"]}


def measure_cell(bench: Bench, name: str, config: dict, work: Path, gguf: bool) -> dict:
    """One cell, from its file when an earlier invocation measured it; what is new is written at once."""
    from backpropagate.contract.campaign import campaign_matrix

    path, out = work / f"{name}.json", work / name
    cell = json.loads(path.read_text()) if path.exists() else None
    if cell is not None and cell["config"] != config:
        differ = ", ".join(f"{key} {cell['config'].get(key)} (now {config.get(key)})"
                           for key in sorted(config.keys() | cell["config"].keys())
                           if cell["config"].get(key) != config.get(key))
        sys.exit(f"{path} was measured with {differ}: give another --work, or remove it")
    if cell is None:
        started = time.monotonic()
        out.mkdir(parents=True, exist_ok=True)
        cell = RUN[config["method"]](bench, config["order"], config["seed"], out)
        cell |= {"config": config, "matrix": campaign_matrix(cell["evals"], len(config["order"])),
                 "seconds": round(time.monotonic() - started), "measured_on": machine()}
        save(path, cell)
        print(f"{name}: measured in {cell['seconds']} s", file=sys.stderr)
    else:
        print(f"{name}: measured before ({cell['seconds']} s), skipped", file=sys.stderr)
    if gguf and "gguf" not in cell:
        started = time.monotonic()
        cell["gguf"] = gguf_accuracy(bench, config["order"], out, cell["deployed"])
        cell["gguf"]["seconds"] = round(time.monotonic() - started)
        save(path, cell)
        print(f"{name}: GGUF measured in {cell['gguf']['seconds']} s", file=sys.stderr)
    return cell


def machine() -> dict:
    """Where and when a cell was measured: its wall time means little without the CPU and the threads it had
    (cells of several machines and invocations end up in one table)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return {"date": time.strftime("%Y-%m-%d"), "cpu": names[0] if names else platform.processor(),
            "cores": os.cpu_count(), "torch_threads": os.environ.get("OMP_NUM_THREADS", "default")}


def save(path: Path, cell: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(cell, indent=1) + "\n")
    os.replace(partial, path)  # a killed benchmark leaves a cell whole or not at all


def mean_sd(values: list) -> list | None:
    values = [value for value in values if value is not None]
    if not values:
        return None
    # One cell has no spread to give: its sd is None, not 0.
    return [round(statistics.mean(values), 4), round(statistics.stdev(values), 4) if len(values) > 1 else None]


def summarize(cells: list[dict], runs: int) -> dict:
    """A method's figures over its cells. Orders differ, so the mean matrix is by place in the order: column j is
    the j-th set learned, whichever it was."""
    def mean(i, j):
        pair = mean_sd([cell["matrix"]["accuracy"][i][j] for cell in cells]) if j <= i else None
        return pair and pair[0]

    matrix = [[mean(i, j) for j in range(runs)] for i in range(runs)]
    return {"acc": mean_sd([cell["matrix"]["acc"] for cell in cells]),
            "bwt": mean_sd([cell["matrix"]["bwt"] for cell in cells]),
            # SLAO's gain showed in the held-out loss before it showed in answers (docs/measurements.md).
            "loss": mean_sd([statistics.mean(row) for row in (cell["matrix"]["eval_loss"][-1] for cell in cells)
                             if None not in row]),
            "gguf_acc": mean_sd([cell["gguf"]["acc"] for cell in cells if "gguf" in cell]),
            "cells": len(cells), "gguf_cells": sum("gguf" in cell for cell in cells), "accuracy": matrix}


def markdown(summaries: dict, heading: str) -> str:
    def figure(pair, signed=False):
        if pair is None:
            return "—"
        mean = f"{pair[0]:{'+' if signed else ''}.3f}"
        return mean if pair[1] is None else f"{mean} ± {pair[1]:.3f}"

    lines = [heading, "", "| method | ACC | BWT | held-out loss after the last run | q4_k_m GGUF ACC | cells |",
             "| --- | --- | --- | --- | --- | --- |"]
    for method, s in summaries.items():
        gguf_cells = f" ({s['gguf_cells']} cells)" if s["gguf_cells"] not in (0, s["cells"]) else ""
        lines.append(f"| {method} | {figure(s['acc'])} | {figure(s['bwt'], True)} | {figure(s['loss'])} | "
                     f"{figure(s['gguf_acc'])}{gguf_cells} | {s['cells']} |")
    for method, s in summaries.items():
        runs = len(s["accuracy"])
        lines += ["", f"{method}: mean accuracy after run i (rows) on the j-th set learned (columns)", "",
                  "| after run | " + " | ".join(f"set {j}" for j in range(1, runs + 1)) + " |",
                  "| --- |" + " --- |" * runs]
        lines += [f"| {i + 1} | " + " | ".join("" if value is None else f"{value:.3f}" for value in row) + " |"
                  for i, row in enumerate(s["accuracy"])]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="quickstart")
    parser.add_argument("--steps", type=int, help="optimizer steps of each run [default the setting's: "
                        + ", ".join(f"{name} {s['steps']}" for name, s in SETTINGS.items()) + "]")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--orders", default="abcd,dcba", help="comma-separated task orders, each of the sets a-d")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (the CLI's --seed)")
    parser.add_argument("--replay", type=float, default=1.0, help="--replay fraction of the +replay methods "
                        "[default 1.0, multi-run's own]")
    parser.add_argument("--device", default="cpu", help="the CLI's --device (cpu: a run repeats exactly)")
    parser.add_argument("--no-gguf", action="store_true", help="skip the q4_k_m export of each final adapter")
    parser.add_argument("--work", type=Path, help="[default output/bench_continual/<setting>]")
    parser.add_argument("--lock", help="flock this file around each CLI command (a shared machine)")
    parser.add_argument("--report", action="store_true", help="measure nothing: the table of the cells already "
                        "in --work (from any machine or invocation), with those still missing named")
    args = parser.parse_args()
    args.methods, args.orders = args.methods.split(","), args.orders.split(",")
    problems = [f"unknown method {m!r}" for m in args.methods if m not in METHODS]
    problems += [f"order {o!r} is not two or more distinct sets of {TASKS}" for o in args.orders
                 if len(o) < 2 or len(set(o)) != len(o) or set(o) - set(TASKS)]
    if len({len(o) for o in args.orders}) > 1:
        problems.append("orders of different lengths have no common matrix")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        problems.append(f"--seeds {args.seeds!r} is not comma-separated integers")
    if problems:
        parser.error("; ".join(problems))
    args.steps = args.steps or SETTINGS[args.setting]["steps"]
    args.work = args.work or ROOT / "output" / "bench_continual" / args.setting
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    training = ("--model", args.model, "--device", args.device, *SETTINGS[args.setting]["flags"], *COMMON)
    bench = Bench(lock=args.lock, training=training, steps=args.steps, replay=args.replay)
    args.work.mkdir(parents=True, exist_ok=True)
    cells, missing = {}, []
    for method in args.methods:
        for order in args.orders:
            for seed in args.seeds:
                name = f"{args.setting}-{method}-{order}-seed{seed}"
                if args.report and not (args.work / f"{name}.json").exists():
                    missing.append(name)
                    continue
                config = {"setting": args.setting, "method": method, "order": order, "seed": seed,
                          "model": args.model, "steps": args.steps, "device": args.device}
                if method.endswith("+replay"):
                    config["replay"] = args.replay
                if method == "joint":
                    config["joint_steps"] = "steps x sets"
                cells[name] = measure_cell(bench, name, config, args.work, not (args.no_gguf or args.report))
    summaries = {method: summarize([cell for cell in cells.values() if cell["config"]["method"] == method],
                                   len(args.orders[0])) for method in args.methods}
    heading = (f"Setting {args.setting} ({args.steps} steps a run), model {Path(args.model).name}, orders "
               f"{', '.join(args.orders)}, seeds {', '.join(map(str, args.seeds))}; mean ± sd over orders x seeds. "
               f"Accuracy: greedy answers of {ANSWER_TOKENS} tokens to a set's unseen phrasings that contain the fact.")
    if missing:
        heading += f" Not measured yet ({len(missing)} of {len(missing) + len(cells)} cells): {', '.join(missing)}."
    table = markdown(summaries, heading)
    (args.work / "results.md").write_text(table + "\n")
    (args.work / "results.json").write_text(json.dumps({"methods": summaries, "cells": cells}, indent=1) + "\n")
    print(table)
    print(f"\n{len(cells)} cells in {time.monotonic() - started:.0f} s; {args.work / 'results.md'}")


if __name__ == "__main__":
    main()
