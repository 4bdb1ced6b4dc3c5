"""Tokens/s of the train stage on 2 data-parallel CPU workers (torchrun, gloo) against 1, same run.

Runs `backprop train` on the tiny model in three set-ups, with the same flags (the global batch
does not change with --workers): 1 worker with torch's default threads (one per core), 1 worker
with one thread, and 2 workers with one thread each (what torchrun sets). With ``--ray`` it adds
1 and 2 workers of `--runtime ray`, on a Ray cluster it starts on this machine (2 CPUs, 127.0.0.1;
Ray gives each worker one thread). It prints each run's training tokens/s (rank 0's count of every
rank's tokens over its own training time) and the largest relative gap between the 1- and 2-worker
losses.

    python scripts/bench_workers.py --model models/tiny-llama [--steps 10] [--repeats 1] [--ray]

On a machine with as many cores as workers share, no speed-up is to be expected: two processes
split the same cores one process already used, and they add an all-reduce per step. The figure
is for what data parallelism costs here, not for what it gains on GPUs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SETUPS = (("1 worker, default threads", 1, None), ("1 worker, 1 thread", 1, "1"), ("2 workers x 1 thread", 2, None))
RAY_SETUPS = (("1 Ray worker", 1, "ray"), ("2 Ray workers", 2, "ray"))
# A Ray cluster on this machine, held by this child until its standard input closes.
RAY_CLUSTER = ("import sys, ray\n"
               "context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1')\n"
               "print(context.address_info['gcs_address'], flush=True)\n"
               "sys.stdin.read()\n")


def train(model: str, data: str, steps: int, workers: int, threads: str | None, output: Path,
          ray_address: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPAGATE_") and k != "OMP_NUM_THREADS"}
    if threads == "ray":
        runtime = ["--runtime", "ray", "--ray-address", ray_address]
        env["RAY_AUTH_MODE"] = "token"  # the cluster's default token authentication, the token in ~/.ray
    else:
        runtime = ["--runtime", "local"]
        if threads:
            env["OMP_NUM_THREADS"] = threads
    command = [sys.executable, "-m", "backpropagate", "train", "--data", data, "--model", model, "--output",
               str(output), "--steps", str(steps), "--device", "cpu", "--max-seq-length", "128", "--batch-size", "4",
               "--gradient-accumulation", "2", "--checkpoint-every", "0", *runtime, "--report-to", "none",
               "--workers", str(workers), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a local model folder (scripts/make_tiny_model.py)")
    parser.add_argument("--data", default=str(ROOT / "examples" / "quickstart.jsonl"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ray", action="store_true", help="also 1 and 2 workers of --runtime ray")
    args = parser.parse_args()
    setups = SETUPS + (RAY_SETUPS if args.ray else ())
    speeds: dict[str, list[float]] = {name: [] for name, _, _ in setups}
    losses: dict[int, list[float]] = {}
    cluster = subprocess.Popen([sys.executable, "-c", RAY_CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True) if args.ray else None
    ray_address = "127.0.0.1:" + cluster.stdout.readline().strip().rpartition(":")[2] if cluster else ""
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for repeat in range(args.repeats):
                for at, (name, workers, threads) in enumerate(setups):
                    result = train(args.model, args.data, args.steps, workers, threads,
                                   Path(scratch) / f"{at}-{repeat}", ray_address)
                    speeds[name].append(result["tokens_per_s"])
                    losses[workers] = result["losses"]
                    print(f"{name}, repeat {repeat}: {result['tokens_per_s']:,.0f} tokens/s", flush=True)
    finally:
        if cluster:
            cluster.stdin.close()
            cluster.wait(timeout=60)
    gap = max(abs(a - b) / abs(b) for a, b in zip(losses[2], losses[1]))
    print("median tokens/s: " + ", ".join(f"{name} {statistics.median(found):,.0f}" for name, found in speeds.items())
          + f"; largest relative loss gap between 1 and 2 workers {gap:.1e} over {args.steps} steps")


if __name__ == "__main__":
    main()
