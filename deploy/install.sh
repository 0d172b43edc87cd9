#!/usr/bin/env bash
# Install guardsdk from a built wheel into a new virtualenv: the steps of the container image (deploy/Dockerfile)
# and of the test that installs the wheel (tests/test_deploy_wheel.py), so that test runs what the image runs.
#
#   deploy/install.sh VENV WHEEL [EXTRAS]          EXTRAS default: serve,classifier,gguf,tracing
#
# Environment:
#   PYTHON          the interpreter that makes the virtualenv (default: python3)
#   TORCH_INDEX     a package index for torch (the image: https://download.pytorch.org/whl/cpu, the CPU build;
#                   unset: pip's own configuration, which on the machine that tests this finds the CPU wheel on disk)
#   LLAMA_WHEELS    a folder holding a llama_cpp_python wheel to install; without one there, llama-cpp-python is
#                   compiled from source into it (~10 min on 2 cores) for a portable instruction set: AVX2/FMA/F16C,
#                   never -march=native (GGML_NATIVE=OFF), without llamafile's kernels (as scripts/setup_env.sh)
set -euo pipefail

venv="$1" wheel="$2" extras="${3:-serve,classifier,gguf,tracing}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION=2.13.0
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_PORTABLE_ARGS="-DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
"${pip[@]}" install --quiet --upgrade pip
# torch first, pinned: a bare `torch` requirement resolves to a CUDA build and its ~3 GB of NVIDIA libraries.
if [[ "$extras" == *classifier* || "$extras" == *hf* ]]; then
    "${pip[@]}" install --quiet ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==$TORCH_VERSION"
fi
if [[ "$extras" == *gguf* || "$extras" == *server* ]]; then
    wheels="${LLAMA_WHEELS:-$(mktemp -d)}"
    if ! ls "$wheels"/llama_cpp_python-*.whl > /dev/null 2>&1; then
        CMAKE_ARGS="$LLAMA_PORTABLE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            "${pip[@]}" wheel --quiet --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$wheels"
    fi
    "${pip[@]}" install --quiet --no-deps "$wheels"/llama_cpp_python-*.whl
fi
"${pip[@]}" install --quiet "$wheel[$extras]"
"$venv/bin/guardsdk" --version
