"""How long `backprop --help` takes, against a bare `python -c pass` in the same run.

    python scripts/bench_cli_startup.py [--runs 20]

Prints the median wall time of each and the ratio. The host CLI must stay quick
to start: it imports no torch, transformers or docker (tests/unit/test_cli.py
asserts that; this script measures what it costs).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backprop = shutil.which("backprop") or sys.exit("backprop is not on PATH: activate .venv first")
    baseline = median_seconds([sys.executable, "-c", "pass"], args.runs)
    help_time = median_seconds([backprop, "--help"], args.runs)
    print(f"python -c pass   {baseline * 1000:7.1f} ms")
    print(f"backprop --help  {help_time * 1000:7.1f} ms  ({help_time / baseline:.1f}x bare python)")


if __name__ == "__main__":
    main()
