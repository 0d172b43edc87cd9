#!/usr/bin/env bash
# Create or refresh the local virtualenv (.venv) with everything guardsdk, its tests and its
# trainer need. Idempotent: reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
# A portable x86-64 build (AVX2/FMA/F16C). The default -march=native turns on AMX-INT8 on Xeons
# whose kernel does not enable it, and quantized models then die with SIGILL.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/guardsdk/wheels/llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}-avx2"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)

stamp=.venv/.guardsdk-setup
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "${pip[@]}" install --quiet --upgrade pip
    # The CPU build of torch that lies on this machine's disk (a bare `torch` pulls a CUDA build).
    "${pip[@]}" install --quiet "torch==2.13.0"
    # llama-cpp-python compiles from source: ~10 min on 2 cores, once; the wheel is kept in $WHEELS.
    if ! ls "$WHEELS"/llama_cpp_python-*.whl > /dev/null 2>&1; then
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            "${pip[@]}" wheel --quiet --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$WHEELS"
    fi
    "${pip[@]}" install --quiet --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl
    "${pip[@]}" install --quiet -e ".[dev]"
    echo "$want" > "$stamp"
fi
# llama.cpp's HF->GGUF converter ships only in the llama-cpp-python sdist: fetch it once.
.venv/bin/python -m guardsdk.tools.gguf_export > /dev/null
