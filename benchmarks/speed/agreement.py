"""Do the fast paths decide as the reference does? Verdicts on the same benchmark inputs, side by side:
exact mode (drafting, the default) against plain greedy decoding, plain greedy decoding without the prefix cache
(what evaluating the same tokens in other batches already moves), and llama.cpp quantization types against the
bundled Q8_0 file (its F16 source was not kept: each type is requantized from Q8_0, which loses a little more
than quantizing from F16 would). Prints, per path: identical verdicts, identical output text, seconds per check.

Usage: .venv/bin/python benchmarks/speed/agreement.py [--inputs 200] [--quant Q4_0 Q4_K_M] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS

if TYPE_CHECKING:
    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.verdict import Verdict


def benchmark_pairs(count: int) -> list[tuple[str, str | None]]:
    from guardsdk.eval.benchmarks import BENCHMARKS, load_items

    per_set = -(-count // len(BENCHMARKS))
    items = [item for spec in BENCHMARKS for item in load_items(SHARED_BENCHMARKS, spec, sample=per_set)]
    return [(item.prompt, item.response) for item in items][:count]


def run(backend: LlamaCppBackend, pairs: list[tuple[str, str | None]], cached: bool = True) -> tuple[list, list[float]]:
    """Each pair checked in turn; ``cached=False`` evaluates every input whole (no prefix reuse, as a server
    without a prefix cache does)."""
    from guardsdk import Guard, Policy

    guard = Guard(backend, policy=Policy(on_unsafe="annotate"))
    verdicts, seconds = [], []
    for pair in pairs:
        if not cached:
            backend.llm.reset()
        started = time.perf_counter()
        verdicts.append(guard.check(*pair))
        seconds.append(time.perf_counter() - started)
    return verdicts, seconds


def gated(verdict: Verdict) -> tuple:
    """The labels of the tasks the default policy gates on (prompt and response harmfulness)."""
    from guardsdk import Policy

    return tuple(verdict.labels[task] for task in sorted(Policy().gates))


def differences(reference: list, verdicts: list) -> list[str]:
    """Each label that differs from the reference, with both scores (how close to a tie it was)."""
    lines = []
    for i, (r, v) in enumerate(zip(reference, verdicts, strict=True)):
        for task in r.labels:
            if r.labels[task] != v.labels[task]:
                lines.append(f"input {i}, {task}: {r.labels[task]} (p={r.scores.get(task, float('nan')):.4f}) -> "
                             f"{v.labels[task]} (p={v.scores.get(task, float('nan')):.4f})")  # fmt: skip
    return lines


def log_odds(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def score_drift(reference: list, verdicts: list) -> float:
    """The largest change in a score's log-odds (the two label words' log-probability difference, what
    REDECODE_MARGIN bounds) on outputs whose text is the same: how far the evaluation alone moves a score."""
    shifts = [abs(log_odds(r.scores[task]) - log_odds(v.scores[task])) for r, v in zip(reference, verdicts, strict=True)
              if r.raw == v.raw for task in r.scores if task in v.scores]  # fmt: skip
    return max(shifts, default=0.0)


def compare(name: str, reference: list, verdicts: list, seconds: list[float]) -> dict:
    pairs = list(zip(reference, verdicts, strict=True))
    return {
        "path": name,
        "same_verdict": f"{sum(r.labels == v.labels for r, v in pairs)}/{len(pairs)}",
        "same_gated_labels": f"{sum(gated(r) == gated(v) for r, v in pairs)}/{len(pairs)}",
        "same_text": f"{sum(r.raw == v.raw for r, v in pairs)}/{len(pairs)}",
        "largest_log_odds_shift_same_text": f"{score_drift(reference, verdicts):.4f}",
        "median_s": f"{statistics.median(seconds):.3f}",
        "mean_s": f"{statistics.fmean(seconds):.3f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--quant", nargs="*", default=["Q4_0", "Q4_K_M"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from guardsdk.backends.llamacpp import REDECODE_MARGIN, LlamaCppBackend
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.tools.gguf_export import quantize

    logging.getLogger("guardsdk").setLevel(logging.ERROR)
    pairs = benchmark_pairs(args.inputs)
    model = bundled_tiny_path()
    reference, plain_seconds = run(LlamaCppBackend(model, n_threads=args.threads, drafting=False), pairs)
    rows = [compare("Q8_0 plain greedy (reference)", reference, reference, plain_seconds)]
    verdicts, seconds = run(LlamaCppBackend(model, n_threads=args.threads, drafting=False), pairs, cached=False)
    rows.append(compare("Q8_0 plain greedy, whole input each check (no prefix cache)", reference, verdicts, seconds))
    uncached_differences = differences(reference, verdicts)
    exact = LlamaCppBackend(model, n_threads=args.threads)
    verdicts, seconds = run(exact, pairs)
    rows.append(compare("Q8_0 exact mode (drafting, the default)", reference, verdicts, seconds))
    exact_differences = differences(reference, verdicts)
    with tempfile.TemporaryDirectory() as folder:
        for qtype in args.quant:
            path = quantize(model, Path(folder) / f"tiny-{qtype}.gguf", qtype, allow_requantize=True)
            verdicts, seconds = run(LlamaCppBackend(path, n_threads=args.threads, drafting=False), pairs)
            rows.append(compare(f"{qtype} plain greedy ({path.stat().st_size / 2**20:.1f} MiB)", reference, verdicts,
                                seconds))  # fmt: skip
    keys = list(rows[0])
    print(
        f"{len(pairs)} benchmark inputs (all ten sets), bundled {model.name} ({model.stat().st_size / 2**20:.1f} MiB)"
    )
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    print(f"\nexact mode decoded {exact.redecoded} of {len(pairs)} outputs again one token per step (a label word "
          f"chosen by under {REDECODE_MARGIN} log-probability)")  # fmt: skip
    print("\nexact mode's labels that differ from plain greedy (p: the probability of the positive label):")
    print("\n".join(exact_differences) or "none")
    print("\nthe same without the prefix cache (what reusing the cache alone moves):")
    print("\n".join(uncached_differences) or "none")


if __name__ == "__main__":
    main()
