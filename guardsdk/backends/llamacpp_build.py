"""What this machine's llama.cpp build does, measured: whether its batches give one-token steps' logits, and what
verifying k drafted tokens in one batch costs against one step (exact mode's drafting; docs/speed.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from guardsdk.backends.drafting import VerifyCosts


def batches_match_steps(llama_cpp: Any) -> bool:
    """Whether this llama.cpp build evaluates a token in a small batch (exact mode's verification) exactly as in a
    one-token step: true without llamafile's matrix kernels, which take batches only
    (benchmarks/speed/batch_invariance.py)."""
    return "LLAMAFILE = 1" not in llama_cpp.llama_print_system_info().decode(errors="replace")


def measure_verify_costs(backend: Any, sizes: Sequence[int] = (1, 2, 4, 8), repeats: int = 3) -> VerifyCosts:
    """Time k tokens evaluated in one batch (logits for each) against one decode step, on this machine now
    (``backend``: a :class:`~guardsdk.backends.llamacpp.LlamaCppBackend`)."""
    llm = backend.llm
    with backend._lock:
        base = backend.input_ids(" the guard reads this text" * 8)
        llm.n_tokens = 0
        llm.eval(base)
        seconds = {}
        for k in sizes:
            runs = []
            for _ in range(repeats):
                llm.n_tokens = len(base)
                started = time.perf_counter()
                backend._decode_all(base[1 : k + 1])
                runs.append(time.perf_counter() - started)
            seconds[k] = sorted(runs)[len(runs) // 2]
        llm.n_tokens = len(base)
        llm._requires_eval = True
    return VerifyCosts({k: seconds[k] / seconds[sizes[0]] for k in sizes}, step_s=seconds[sizes[0]])


def logits_in_batches(backend: Any, ids: list[int], tokens: list[int], size: int) -> list[Any]:
    """The logits after each of ``tokens`` (copies), evaluated after the prompt ``ids`` ``size`` tokens a batch:
    to check that batches give one-token steps' logits (benchmarks/speed/batch_invariance.py). The cache is
    cleared."""
    import numpy as np

    with backend._lock:
        llm = backend.llm
        llm.n_tokens = 0
        llm.eval(ids)
        rows = []
        for start in range(0, len(tokens), size):
            chunk = tokens[start : start + size]
            rows += [np.array(row) for row in backend._decode_all(chunk)]
            llm.input_ids[llm.n_tokens : llm.n_tokens + len(chunk)] = chunk
            llm.n_tokens += len(chunk)
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return rows


__all__ = ["batches_match_steps", "logits_in_batches", "measure_verify_costs"]
