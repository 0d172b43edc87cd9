"""Does llama.cpp give a token the same logits in a batch as in a one-token step? What makes exact mode exact.

For each of a few benchmark inputs, the model's (default: the bundled one's) plain greedy output is evaluated
again after the input in chunks of k tokens (k = 1 is plain decoding's one-token steps), and every position's
logits are compared with k = 1 and with k = 2. Prints, per k: positions whose logits differ at all, and the largest
difference. Exact mode verifies at most EXACT_DRAFT + 1 tokens a batch: those must match k = 1 (docs/speed.md).

Usage: .venv/bin/python benchmarks/speed/batch_invariance.py [--inputs 8] [--threads 2] [--gguf FILE] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks.speed.agreement import benchmark_pairs

SIZES = (1, 2, 3, 4, 8)


def llama_cpp_build() -> str:
    """Whether this llama.cpp has llamafile's matrix kernels (used for batches, not for one-token steps)."""
    import llama_cpp

    from guardsdk.backends.llamacpp_build import batches_match_steps

    return "LLAMAFILE off" if batches_match_steps(llama_cpp) else "LLAMAFILE on"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gguf", type=Path, help="default: the bundled guardreasoner-tiny")
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()
    import numpy as np

    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.backends.llamacpp_build import logits_in_batches
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.families.guardreasoner.template import build_input

    args.gguf = args.gguf or bundled_tiny_path()
    backend = LlamaCppBackend(args.gguf, n_threads=args.threads, drafting=False, prefix_states=None)
    totals = {k: {"vs_1": 0, "vs_2": 0, "max_vs_1": 0.0, "max_vs_2": 0.0} for k in SIZES}
    positions = 0
    for prompt, response in benchmark_pairs(args.inputs):
        text = build_input(prompt, response)
        output = list(backend.generate([text], max_tokens=args.max_tokens)[0].token_ids or ())
        ids = backend.input_ids(text)
        by_k = {k: logits_in_batches(backend, ids, output, k) for k in SIZES}
        positions += len(output)
        for k in SIZES:
            for reference, key in ((by_k[1], "1"), (by_k[2], "2")):
                diffs = [float(np.abs(a - b).max()) for a, b in zip(reference, by_k[k], strict=True)]
                totals[k][f"vs_{key}"] += sum(d > 0 for d in diffs)
                totals[k][f"max_vs_{key}"] = max(totals[k][f"max_vs_{key}"], max(diffs, default=0.0))
    print(f"{args.inputs} inputs, {positions} output positions, {args.gguf.name}, {llama_cpp_build()}")
    print("| tokens per batch | positions differing from one-token steps (max logit diff) | from 2-token batches |")
    print("|---|---|---|")
    for k, t in totals.items():
        print(f"| {k} | {t['vs_1']} ({t['max_vs_1']:.4f}) | {t['vs_2']} ({t['max_vs_2']:.4f}) |")
    backend.close()


if __name__ == "__main__":
    main()
