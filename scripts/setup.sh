#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install backpropagate with the given extras.
#   bash scripts/setup.sh            host CLI only (typer, rich)
#   bash scripts/setup.sh local      + the ML stack for the local runtime (CPU torch 2.13.0 here)
#   bash scripts/setup.sh local,dev  + test and benchmark tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"

"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"backpropagate needs Python >= 3.11, found {sys.version.split()[0]}; set PYTHON=/path/to/python3.11")
PY

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
target="."
if [ -n "$extras" ]; then
    target=".[$extras]"
fi
.venv/bin/python -m pip install --quiet -e "$target"
echo "installed backpropagate${extras:+[$extras]} into .venv"
