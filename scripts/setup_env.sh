#!/usr/bin/env bash
# Create or refresh the local virtualenv (.venv) with everything guardsdk, its tests and its
# trainer need. Idempotent: reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

stamp=.venv/.guardsdk-setup
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # The CPU build of torch that lies on this machine's disk (a bare `torch` pulls a CUDA build).
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    # llama-cpp-python compiles from source (~10 min on 2 cores the first time; pip caches the wheel).
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install --quiet -e ".[dev]"
    echo "$want" > "$stamp"
fi
# llama.cpp's HF->GGUF converter ships only in the llama-cpp-python sdist: fetch it once.
.venv/bin/python -m guardsdk.gguf_export > /dev/null
