#!/usr/bin/env bash
# The main job on the embedded default: set up, build the tiny model offline,
# train a LoRA adapter for 30 steps on the CPU, and print where the adapter is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local
. .venv/bin/activate
if [ ! -d models/tiny-llama ]; then
    python scripts/make_tiny_model.py --arch llama --out models/tiny-llama
fi
backprop train --data examples/quickstart.jsonl --model models/tiny-llama --steps 30 --device cpu --runtime local
