"""The classifier's speed beside the bundled guardreasoner-tiny, side by side in one run.

Single checks (p50 and p90 ms) on a quiet machine and with a busy-looping process on the other core, and
batched prompt checks per second, for the classifier (1 thread for single checks, --batch-threads for
batches) and for guardreasoner-tiny (llama.cpp, its default threads); prints each ratio tiny / classifier.

``--encoder-batch-sizes 8 16 32 64 128`` then times the encoder alone on the batched prompts at each batch
size, three rounds (how ``BATCH_SIZE`` was chosen).

Usage: .venv/bin/python benchmarks/classifier/bench_classifier.py [--checks 40] [--batch 256]
       [--encoder-batch-sizes ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS, busy_loop


def timings(check: Callable[[str], object], prompts: list[str]) -> tuple[float, float]:
    times = []
    for prompt in prompts:
        started = time.perf_counter()
        check(prompt)
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def with_busy_core(run: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=busy_loop, args=(stop,), daemon=True)
    process.start()
    try:
        return run()
    finally:
        stop.set()
        process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=40, help="single checks per cell (tiny: a quarter of it)")
    parser.add_argument("--batch", type=int, default=256, help="prompts in the batched run")
    parser.add_argument("--batch-threads", type=int, default=os.cpu_count())
    parser.add_argument("--encoder-batch-sizes", type=int, nargs="*", default=[])
    args = parser.parse_args()
    from guardsdk import Guard, OnUnsafe, Policy
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.eval.benchmarks import benchmark, load_items

    toxicchat = load_items(SHARED_BENCHMARKS, benchmark("ToxicChat"), sample=max(args.batch, args.checks))
    prompts = [item.prompt for item in toxicchat]
    policy = Policy(on_unsafe=OnUnsafe.ANNOTATE)
    classifier = Guard(family="classifier", policy=policy, threads=1)
    tiny = Guard.from_gguf(bundled_tiny_path(), policy=policy)
    classifier.check(prompts[0])
    tiny.check(prompts[0])
    singles = prompts[: args.checks]
    rows = {}
    for name, guard, n in (("classifier", classifier, len(singles)), ("guardreasoner-tiny", tiny, len(singles) // 4)):
        rows[name] = {
            "quiet": timings(guard.check, singles[:n]),
            "busy": with_busy_core(lambda g=guard, k=n: timings(g.check, singles[:k])),
        }
    classifier.detector.encoder.threads = args.batch_threads
    started = time.perf_counter()
    classifier.check_batch(prompts[: args.batch])
    classifier_rate = args.batch / (time.perf_counter() - started)
    tiny_n = max(args.batch // 32, 4)
    started = time.perf_counter()
    tiny.check_batch(prompts[:tiny_n])
    tiny_rate = tiny_n / (time.perf_counter() - started)
    print(f"{'':22} {'quiet p50/p90 ms':>18} {'other core busy p50/p90 ms':>28}")
    for name, row in rows.items():
        quiet, busy = row["quiet"], row["busy"]
        print(f"{name:22} {quiet[0]:8.1f} /{quiet[1]:8.1f} {busy[0]:17.1f} /{busy[1]:8.1f}")
    for cell in ("quiet", "busy"):
        ratio = rows["guardreasoner-tiny"][cell][0] / rows["classifier"][cell][0]
        print(f"p50 ratio tiny / classifier ({cell}): {ratio:.0f}x")
    print(f"batched prompt checks/s: classifier {classifier_rate:.0f} ({args.batch} prompts, "
          f"{args.batch_threads} threads), guardreasoner-tiny {tiny_rate:.2f} ({tiny_n}); "
          f"ratio {classifier_rate / tiny_rate:.0f}x")  # fmt: skip
    encoder, batch = classifier.detector.encoder, prompts[: args.batch]
    for round_ in range(3 if args.encoder_batch_sizes else 0):
        rates = []
        for size in args.encoder_batch_sizes:
            started = time.perf_counter()
            encoder.encode(batch, batch_size=size)
            rates.append(f"{size}: {len(batch) / (time.perf_counter() - started):.0f}")
        print(f"encoder alone, texts/s by batch size (round {round_ + 1}): " + ", ".join(rates))


if __name__ == "__main__":
    main()
