#!/usr/bin/env bash
# Give the local runtime a pinned llama.cpp: converter, quantizer and runtime from one source.
#
#   bash scripts/setup_llama_cpp.sh            needs .venv with the `local` extra (bash scripts/setup.sh local)
#   bash scripts/setup_llama_cpp.sh --force    redo everything, even if already set up
#
# The llama-cpp-python sdist vendors the whole llama.cpp tree. This script downloads it, copies
# convert_hf_to_gguf.py, convert_lora_to_gguf.py, their `conversion` package and gguf-py into
# .venv/share/llama.cpp/ (the converters put the gguf-py beside them first on sys.path, so PyPI's gguf
# never mixes in; PYTHONPATH=.venv/share/llama.cpp/gguf-py gives other code the same one), and installs
# llama-cpp-python (llama_cpp.Llama, llama_cpp.llama_model_quantize) built from that same sdist.
#
# The build is portable: a -march=native build on CPUs with AMX segfaulted on every quantized model
# (llama.cpp issue 20824). It takes about 5 minutes on 2 cores, so it happens once per machine, not
# once per clone: the sdist and the built wheel live in a cache outside the clone, the wheel under a
# key made of the version, the build flags and the Python ABI (as pip caches wheels). A fresh clone
# on the same machine installs that wheel in seconds. The cache is $BACKPROPAGATE_CACHE, else
# $XDG_CACHE_HOME/backpropagate, else ~/.cache/backpropagate.
set -euo pipefail
cd "$(dirname "$0")/.."

# One pin for the local runtime and the gguf-convert image: version and sdist sha256 from its lock line.
lock=images/gguf-convert/llama-cpp.lock
VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\) .*/\1/p' "$lock")
SHA256=$(sed -n 's/.*--hash=sha256:\([0-9a-f]*\).*/\1/p' "$lock")
name="llama_cpp_python-$VERSION"
cache="${BACKPROPAGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backpropagate}/llama-cpp"
share=.venv/share/llama.cpp
python=.venv/bin/python

force="${1:-}"
if [ $# -gt 1 ] || { [ -n "$force" ] && [ "$force" != "--force" ]; }; then
    echo "usage: bash scripts/setup_llama_cpp.sh [--force]" >&2
    exit 2
fi
if [ ! -x "$python" ]; then
    echo "no .venv: run 'bash scripts/setup.sh local' first" >&2
    exit 1
fi

# The installed version, with "+amx" appended when the build has AMX (a plain `pip install` builds with
# -march=native): such a build counts as missing.
installed_version() {
    "$python" -c "import llama_cpp as l; print(l.__version__ + ('+amx' if b'AMX' in l.llama_print_system_info() else ''))" \
        2>/dev/null || true
}

if [ "$force" != "--force" ] && [ "$(installed_version)" = "$VERSION" ] \
    && grep -qx "llama-cpp-python==$VERSION" "$share/VERSION" 2>/dev/null \
    && [ -f "$share/convert_hf_to_gguf.py" ] && [ -f "$share/convert_lora_to_gguf.py" ] \
    && [ -d "$share/conversion" ] && [ -d "$share/gguf-py/gguf" ]; then
    echo "llama.cpp already set up: llama-cpp-python $VERSION, converters in $share"
    exit 0
fi

"$python" -c "import torch" 2>/dev/null || { echo "torch missing: run 'bash scripts/setup.sh local' first" >&2; exit 1; }
# The converters' other imports; gguf-py itself needs tqdm, pyyaml and requests.
"$python" -m pip install --quiet numpy sentencepiece safetensors protobuf tqdm pyyaml requests

mkdir -p "$cache"
sdist="$cache/$name.tar.gz"
if ! echo "$SHA256  $sdist" | sha256sum --check --quiet 2>/dev/null; then
    "$python" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$cache"
    echo "$SHA256  $sdist" | sha256sum --check --quiet || { echo "unexpected sha256 for $sdist" >&2; exit 1; }
fi

# Only the converter files are unpacked; pip builds from the sdist itself.
rm -rf "${cache:?}/$name" "$share"
tar -xzf "$sdist" -C "$cache" "$name/vendor/llama.cpp/"{convert_hf_to_gguf.py,convert_lora_to_gguf.py,conversion,gguf-py}
mkdir -p "$share"
cp -r "$cache/$name/vendor/llama.cpp/"{convert_hf_to_gguf.py,convert_lora_to_gguf.py,conversion,gguf-py} "$share/"
printf 'llama-cpp-python==%s\nsha256 %s\n' "$VERSION" "$SHA256" > "$share/VERSION"

# Portable x86-64: AVX2/FMA/F16C on, AVX512 and AMX off, no -march=native. LLAVA_BUILD=OFF skips the
# multimodal library, which text models never load.
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF"
abi=$("$python" -c "import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())")
key=$(printf '%s\n%s\n%s\n%s\n' "$VERSION" "$SHA256" "$CMAKE_ARGS" "$abi" | sha256sum | cut -c1-16)
wheels="$cache/wheels/$VERSION-$key"
if [ "$force" = "--force" ] || [ "$(installed_version)" != "$VERSION" ]; then
    wheel=$(ls "$wheels"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
    if [ "$force" = "--force" ] || [ -z "$wheel" ]; then
        echo "building llama-cpp-python $VERSION (portable, about 5 minutes on 2 cores; once per machine)"
        # Built into a temporary folder and moved into place whole, so an interrupted build leaves no
        # wheel behind. --no-cache-dir keeps pip from reusing a wheel it built with other flags.
        rm -rf "$wheels.partial"
        mkdir -p "$wheels.partial"
        CMAKE_ARGS="$CMAKE_ARGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            nice -n 10 "$python" -m pip wheel --quiet --no-cache-dir --no-deps "$sdist" -w "$wheels.partial"
        rm -rf "$wheels"
        mv "$wheels.partial" "$wheels"
        wheel=$(ls "$wheels"/llama_cpp_python-*.whl | head -n 1)
    else
        echo "installing llama-cpp-python $VERSION from the machine's cache: $wheel"
    fi
    # --no-deps keeps pip from reinstalling numpy; its own imports follow.
    "$python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
    "$python" -m pip install --quiet typing-extensions diskcache jinja2 numpy
fi

echo "llama.cpp ready: llama-cpp-python $(installed_version), converters in $share"
