#!/usr/bin/env bash
# Regenerate the stage images' locked requirements (images/<stage>/*.lock, with sha256 hashes) from
# their *.in files, for Linux x86_64 and Python 3.11. Run after changing a pin; commit the .lock files.
#
#   bash scripts/lock_images.sh
#
# uv resolves for the images' platform without installing anything. torch's CPU build is not on PyPI:
# --find-links names a folder holding torch-2.13.0+cpu (set WHEELHOUSE; download.pytorch.org/whl/cpu
# serves the same file), so its hash is that wheel's.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELHOUSE="${WHEELHOUSE:-/opt/wheels}"
tools=.cache/lock-tools
[ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install --quiet "uv==0.13.9"; }
export SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
for input in images/*/requirements*.in; do
    # Only CPU inputs look in the wheel folder: elsewhere torch==2.13.0 would match its +cpu build.
    links=()
    grep -q '+cpu' "$input" && links=(--find-links "$WHEELHOUSE")
    # The ui image is built FROM the train image: what they share stays at the train image's versions
    # (the glob locks train first).
    constraints=()
    [ "$input" = images/ui/requirements.in ] && constraints=(--constraint images/train/requirements-cpu.lock)
    "$tools/bin/uv" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 "${links[@]}" "${constraints[@]}" --no-header "$input" \
        -o "${input%.in}.lock"
    echo "locked ${input%.in}.lock"
done
