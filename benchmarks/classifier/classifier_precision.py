"""The classifier on float32 beside bfloat16 autocast (``SentenceEncoder(precision=...)``), side by side in one run:
per unseen benchmark, how many verdicts agree on the benchmark's task, the largest probability difference, and
batched checks per second of each.

    .venv/bin/python benchmarks/classifier/classifier_precision.py [--sample 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS

SETS = ("ToxicChat", "OpenAIModeration", "SafeRLHF", "BeaverTails")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=500, help="seeded items of each benchmark")
    args = parser.parse_args()
    from guardsdk import Guard, Policy
    from guardsdk.detectors.classifier.detector import ClassifierDetector
    from guardsdk.detectors.classifier.encoder import native_bf16
    from guardsdk.eval.benchmarks import benchmark, load_items

    print(f"native bfloat16 on this CPU: {native_bf16()}")
    guards = {p: Guard(ClassifierDetector.from_pretrained(precision=p), policy=Policy(on_unsafe="annotate"))
              for p in ("fp32", "bf16")}  # fmt: skip
    totals = {p: [0, 0.0] for p in guards}
    for name in SETS:
        spec = benchmark(name)
        items = [(i.prompt, i.response) for i in load_items(SHARED_BENCHMARKS, spec, sample=args.sample)]
        verdicts = {}
        for precision, guard in guards.items():
            guard.check_batch(items[:8])
            started = time.perf_counter()
            verdicts[precision] = guard.check_batch(items)
            totals[precision][0] += len(items)
            totals[precision][1] += time.perf_counter() - started
        pairs = list(zip(verdicts["fp32"], verdicts["bf16"], strict=True))
        same = sum(a.labels[spec.task] == b.labels[spec.task] for a, b in pairs)
        scored = [(a, b) for a, b in pairs if spec.task in a.scores and spec.task in b.scores]  # undecided: none
        delta = max(abs(a.scores[spec.task] - b.scores[spec.task]) for a, b in scored)
        print(
            f"{name} ({spec.task}): {same}/{len(pairs)} same labels, largest |p_fp32 - p_bf16| = {delta:.4f} "
            f"({len(scored)} scored)"
        )
    rates = {p: n / s for p, (n, s) in totals.items()}
    print(f"checks/s: fp32 {rates['fp32']:.1f}, bf16 {rates['bf16']:.1f} ({rates['bf16'] / rates['fp32']:.2f}x)")


if __name__ == "__main__":
    main()
