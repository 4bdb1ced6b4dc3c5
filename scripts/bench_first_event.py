"""How much later a stage's first event arrives under Docker than under the local runtime.

Plans a one-step training run on the tiny model several times per runtime, alternating, and
measures from the runtime's ``run`` call to the stage's first event (``started``), then prints
the medians and their difference. The image is built (or found) before timing starts, so this
measures container start, not image builds.

    python scripts/bench_first_event.py --model models/tiny-llama [--repeats 5]

Image settings come from BACKPROPAGATE_DOCKER__* (as in scripts/test.sh), so the image it finds
is the one the tests built.
"""

import argparse
import statistics
import time
from pathlib import Path

from backpropagate.config import load_settings
from backpropagate.images.ensure import ensure_image
from backpropagate.runs.plan import plan_train
from backpropagate.runtimes import choose_runtime

ROOT = Path(__file__).resolve().parents[1]


def time_to_first_event(runtime, settings, data: Path) -> float:
    plan = plan_train(settings, data, "auto", False)
    first: list[float] = []
    start = time.perf_counter()
    runtime.run("train", plan.folder.spec, lambda envelope: first.append(time.perf_counter()) if not first else None)
    return first[0] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a local model folder (scripts/make_tiny_model.py)")
    parser.add_argument("--data", default=str(ROOT / "examples" / "quickstart.jsonl"))
    parser.add_argument("--output", default="/tmp/bench-first-event")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    settings = load_settings(overrides={"model.name": str(Path(args.model).resolve()), "output": args.output,
                                        "training.steps": 1, "training.device": "cpu",
                                        "training.max_seq_length": 128, "training.checkpoint_every": 0})
    local = choose_runtime("local").runtime
    docker = choose_runtime("docker", settings, note=print).runtime
    ensure_image(docker.client(), "train", "cpu", settings.docker, print)
    times: dict[str, list[float]] = {"local": [], "docker": []}
    for _ in range(args.repeats):
        for name, runtime in (("local", local), ("docker", docker)):
            times[name].append(time_to_first_event(runtime, settings, Path(args.data)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:<7} first event after {medians[name]:.3f} s (median of {len(values)}: "
              + ", ".join(f"{v:.3f}" for v in values) + ")")
    print(f"docker - local: {medians['docker'] - medians['local']:+.3f} s")


if __name__ == "__main__":
    main()
