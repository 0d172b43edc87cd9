#!/usr/bin/env bash
# Create or refresh the local virtualenv (.venv) with everything guardsdk, its tests and its
# trainer need. Idempotent: reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
# llama.cpp is built for the instruction sets this CPU reports, never with -march=native: that turns on
# AMX-INT8 on Xeons whose kernel does not enable it, and quantized models then die with SIGILL.
# AVX2/FMA/F16C always; AVX-512 (with VBMI, VNNI, BF16) and AVX-VNNI where /proc/cpuinfo lists them all:
# prompt evaluation 1.3-1.4x and draft verification 1.6x faster for the 1B shape (docs/speed.md). If that build cannot run a model
# here, the AVX2 one is built instead. Without llamafile's matrix kernels (GGML_LLAMAFILE=OFF): with them a token
# evaluated in a batch gets other logits than in a one-token step, so drafting could change what greedy decoding
# writes; without them batches of up to 3 tokens (exact mode's) give the one-token steps' logits bit for bit
# (scripts/batch_invariance.py), at ~1.3x slower evaluation of 128-token inputs (Q4_K_M; F16 and Q8_0 more), the
# same at 32.
LLAMA_AVX2_ARGS="-DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
LLAMA_AVX512_ARGS="-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"
AVX512_FLAGS="avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16 avx_vnni"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/guardsdk/wheels/llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}-nollamafile"

cpu_has() {
    local flags
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2> /dev/null | cut -d: -f2 || true) "  # none listed: AVX2 only
    for flag in "$@"; do [[ "$flags" == *" $flag "* ]] || return 1; done
}

# Build (once, kept in the wheel cache) and install llama-cpp-python for one variant: avx2 or avx512.
install_llama() {
    local wheels="$WHEEL_CACHE-$1" args="$LLAMA_AVX2_ARGS"
    [ "$1" = avx512 ] && args="$args $LLAMA_AVX512_ARGS"
    if ! ls "$wheels"/llama_cpp_python-*.whl > /dev/null 2>&1; then
        CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            "${pip[@]}" wheel --quiet --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$wheels"
    fi
    "${pip[@]}" install --quiet --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
}

# Does the installed llama.cpp run the bundled model on this CPU (no SIGILL)?
llama_runs() {
    .venv/bin/python - > /dev/null 2>&1 << 'PY'
import llama_cpp
llm = llama_cpp.Llama(model_path="guardsdk/models/guardreasoner-tiny-Q8_0.gguf", n_ctx=64, verbose=False)
llm.eval(llm.tokenize(b"Is this safe?"))
PY
}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)

stamp=.venv/.guardsdk-setup
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "${pip[@]}" install --quiet --upgrade pip
    # The CPU build of torch that lies on this machine's disk (a bare `torch` pulls a CUDA build).
    "${pip[@]}" install --quiet "torch==2.13.0"
    # llama-cpp-python compiles from source: ~10 min on 2 cores, once per variant; the wheel is kept.
    # (Installed before the project, whose extras then find it; the check after needs their numpy.)
    variant=avx2
    if cpu_has $AVX512_FLAGS; then variant=avx512; fi
    install_llama "$variant"
    "${pip[@]}" install --quiet -e ".[dev]"
    if [ "$variant" = avx512 ] && ! llama_runs; then
        echo "the AVX-512 build of llama.cpp does not run here: building the AVX2 one" >&2
        install_llama avx2
    fi
    llama_runs || { echo "llama-cpp-python does not run the bundled model on this machine" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
# llama.cpp's HF->GGUF converter ships only in the llama-cpp-python sdist: fetch it once.
.venv/bin/python -m guardsdk.tools.gguf_export > /dev/null
