"""``guardsdk scan``'s two engines side by side on one machine: the same N-row JSONL file (the training pool's rows,
cycled) scanned by the local engine (this process) and by the Ray engine (a local Ray started for the scan, one
guard per actor), for the bundled classifier and for the bundled guardreasoner-tiny GGUF (fewer rows: it reasons);
with ``--plumbing-rows``, also a guard that answers at once, to show what the engines themselves cost (reading, Ray's
queue and blocks, writing).
Prints, per model and engine, the whole scan's wall time and rows/s (model loads, Ray's start and its actors' start
included), when the first batch came back, the steady rows/s (over the second half of the batches), and the Ray/local
ratios; also how many rows both engines decided the same way, and the machine's load average before and after.

Threads: the local engine runs each model at its default (torch's for the classifier: every core; llama.cpp's: half
the cores; ``--gguf-all-cores`` adds the GGUF on every core as ``local*``); each Ray actor one core
(``num_cpus_per_actor=1``, one torch / llama.cpp thread), ``--concurrency`` actors.

The input and outputs go in ``--work`` (default ``/tmp/guardsdk-scan-engines``), never in the repo tree.

Usage: .venv/bin/python benchmarks/scan/scan_engines.py [--rows 1000] [--gguf-rows 40] [--batch-size 16]
       [--gguf-batch-size 4] [--gguf-all-cores] [--concurrency 2] [--skip-gguf]
       [--plumbing-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks.scan.scan_rows import make_input


def run(engine: str, source: Path, out: Path, factory, *, reasoning: bool, batch_size: int, concurrency: int
        ) -> dict:  # fmt: skip
    """One scan: its wall time, when its first batch came back, and its steady rate (the engine's results are timed
    as the scan writes them)."""
    from guardsdk.scan import runner, scan

    arrivals: list[tuple[float, int]] = []
    engine_run = runner._run

    def timed(*args, **kwargs):
        for batch in engine_run(*args, **kwargs):
            arrivals.append((time.perf_counter(), len(batch)))
            yield batch

    shutil.rmtree(out, ignore_errors=True)
    options = {"concurrency": concurrency, "num_cpus_per_actor": 1} if engine == "ray" else None
    started = time.perf_counter()
    runner._run = timed
    try:
        summary = scan(source, out, factory, batch_size=batch_size, reasoning=reasoning, engine=engine,
                       ray_options=options, progress=False)  # fmt: skip
    finally:
        runner._run = engine_run
    wall = time.perf_counter() - started
    with (out / "rows.jsonl").open(encoding="utf-8") as handle:
        decisions = [json.loads(line)["guard_decision"] for line in handle]
    # The steady rate over the second half of the batches: Ray hands batches back in order, so those done while the
    # first was still on its way come in one burst, and a rate from the first batch on would count them twice.
    half = arrivals[len(arrivals) // 2 :]
    steady = sum(n for _, n in half[1:]) / (half[-1][0] - half[0][0]) if len(half) > 1 else float("nan")
    return {"engine": engine, "rows": summary.rows, "wall_s": wall, "rows_per_s_wall": summary.rows / wall,
            "first_batch_s": arrivals[0][0] - started, "rows_per_s_steady": steady, "decisions": decisions}  # fmt: skip


def ray_start_seconds() -> float:
    """``import ray; ray.init(num_cpus=cores)`` then ``ray.shutdown()``, in this process: Ray's fixed cost."""
    import logging

    started = time.perf_counter()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


def compare(name: str, source: Path, work: Path, local_factory, ray_factory, *, reasoning: bool, batch_size: int,
            concurrency: int, local_other=None) -> None:  # fmt: skip
    """Local, then Ray; with ``local_other`` also the local engine with that factory (other threads), printed as
    ``local*``, and Ray's ratio to both."""
    local = run("local", source, work / f"{name}-local", local_factory, reasoning=reasoning, batch_size=batch_size,
                concurrency=concurrency)  # fmt: skip
    on_ray = run("ray", source, work / f"{name}-ray", ray_factory, reasoning=reasoning, batch_size=batch_size,
                 concurrency=concurrency)  # fmt: skip
    results = [local, on_ray]
    if local_other is not None:
        results.append(run("local", source, work / f"{name}-local-other", local_other, reasoning=reasoning,
                           batch_size=batch_size, concurrency=concurrency) | {"engine": "local*"})  # fmt: skip
    same = sum(a == b for a, b in zip(local["decisions"], on_ray["decisions"], strict=True))
    for result in results:
        print(f"{name:<10} {result['engine']:<6} {result['rows']:>5} rows  wall {result['wall_s']:6.1f} s = "
              f"{result['rows_per_s_wall']:6.2f} rows/s  first batch after {result['first_batch_s']:5.1f} s, then "
              f"{result['rows_per_s_steady']:6.2f} rows/s in the second half")  # fmt: skip
    for base in results[::2]:
        whole, steady = (on_ray[key] / base[key] for key in ("rows_per_s_wall", "rows_per_s_steady"))
        print(f"{name:<10} ray/{base['engine']}: whole scan {whole:.2f}x, steady {steady:.2f}x")
    print(f"{name:<10} same decision on ray and local in {same}/{local['rows']} rows", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000, help="rows for the classifier (default 1000; 0: skip)")
    parser.add_argument("--gguf-rows", type=int, default=40, help="rows for guardreasoner-tiny (default 40)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per check batch (default 16)")
    parser.add_argument("--gguf-batch-size", type=int, default=4, help="rows per batch for guardreasoner-tiny (4)")
    parser.add_argument("--gguf-all-cores", action="store_true", help="also the GGUF locally on every core")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count(), help="Ray actors (default: the cores)")
    parser.add_argument("--skip-gguf", action="store_true", help="the classifier only")
    instant = "also this many rows with a guard that answers at once (a replay backend without records: every row "
    instant += "undecided in ~0.3 ms): the engines' own ceiling (default: none)"
    parser.add_argument("--plumbing-rows", type=int, default=0, help=instant)
    parser.add_argument("--work", type=Path, default=Path("/tmp/guardsdk-scan-engines"), help="scratch folder")
    args = parser.parse_args()

    import functools
    import logging

    import guardsdk
    from guardsdk import Guard, Policy
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.policy import OnUnsafe
    from guardsdk.scan import default_guard

    logging.getLogger("guardsdk").setLevel(logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    print(f"guardsdk {guardsdk.__version__}, {cores} cores, {args.concurrency} Ray actors of 1 CPU", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    print(f"ray.init(num_cpus={cores}) with its import: {ray_start_seconds():.1f} s", flush=True)

    if args.rows:
        source = args.work / f"pool-{args.rows}.jsonl"
        make_input(source, args.rows)
        compare("classifier", source, args.work, default_guard, default_guard, reasoning=False,
                batch_size=args.batch_size, concurrency=args.concurrency)  # fmt: skip
    if args.plumbing_rows:
        from guardsdk.backends.replay import ReplayBackend

        source = args.work / f"pool-{args.plumbing_rows}.jsonl"
        make_input(source, args.plumbing_rows)
        instant = functools.partial(
            Guard, ReplayBackend({}, name="no-model"), policy=Policy(on_unsafe=OnUnsafe.ANNOTATE)
        )
        compare("no-model", source, args.work, instant, instant, reasoning=False, batch_size=args.batch_size,
                concurrency=args.concurrency)  # fmt: skip
    if not args.skip_gguf:
        source = args.work / f"pool-{args.gguf_rows}.jsonl"
        make_input(source, args.gguf_rows)
        annotate = Policy(on_unsafe=OnUnsafe.ANNOTATE)
        # llama.cpp's default threads: half the cores locally, one in each actor (its CPU). With ``--gguf-all-cores``
        # also the local engine on every core (local*): on a machine other jobs share, threads that wait on each
        # other at every step can be several times slower than one (docs/backends.md).
        default = functools.partial(Guard.from_gguf, bundled_tiny_path(), policy=annotate)
        every = functools.partial(Guard.from_gguf, bundled_tiny_path(), threads=cores, policy=annotate)
        compare("tiny-gguf", source, args.work, default, default, reasoning=True, batch_size=args.gguf_batch_size,
                concurrency=args.concurrency, local_other=every if args.gguf_all_cores else None)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
