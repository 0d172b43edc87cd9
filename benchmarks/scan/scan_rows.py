"""How fast ``guardsdk scan`` runs over a large JSONL file with the bundled classifier, and whether its memory stays
flat: an N-row file made from the training pool's rows (cycled), scanned to JSONL or Parquet; prints rows/s and the
peak resident memory beside the memory after the model loaded (a streamed scan adds little, whatever N).

The input and output go in ``--work`` (default ``/tmp/guardsdk-scan-bench``), never in the repo tree.

Usage: .venv/bin/python benchmarks/scan/scan_rows.py [--rows 100000] [--offset 0] [--batch-size 32]
       [--format jsonl|parquet]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import TRAIN_POOL


def make_input(path: Path, rows: int, offset: int = 0) -> None:
    """``rows`` JSONL rows (prompt, response, source, row number) cycled from the training pool from its row
    ``offset`` on, streamed."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < rows:
            with TRAIN_POOL.open("rb") as pool:
                for index, line in enumerate(pool):
                    if index < offset and not written:
                        continue
                    if written == rows:
                        break
                    row = json.loads(line)
                    out.write(json.dumps({"n": written, "prompt": row["prompt"], "response": row.get("response"),
                                          "source": row.get("source")}, ensure_ascii=False) + "\n")  # fmt: skip
                    written += 1


def rss_mb() -> float:
    """The resident memory now (MB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Samples the resident memory every ``every`` seconds while a run goes on: flat memory has the same peak in
    the run's last quarter as in its second."""

    def __init__(self, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.samples.append(rss_mb())

    def quarters(self) -> list[float]:
        """The peak RSS (MB) of each quarter of the run's samples."""
        n = len(self.samples)
        return [max(self.samples[i * n // 4 : max((i + 1) * n // 4, i * n // 4 + 1)] or [float("nan")])
                for i in range(4)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="rows in the scanned file (default 2000)")
    parser.add_argument("--offset", type=int, default=0, help="start at this pool row (54000: the long rows)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per guard call (default 32)")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="the output's format")
    parser.add_argument("--work", type=Path, default=Path("/tmp/guardsdk-scan-bench"), help="input and output folder")
    parser.add_argument("--threads", type=int, default=None, help="the classifier's torch threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args()

    from guardsdk import Guard, OnUnsafe, Policy
    from guardsdk.scan import scan

    args.work.mkdir(parents=True, exist_ok=True)
    source = args.work / f"rows-{args.rows}-from-{args.offset}.jsonl"
    if not source.exists():
        started = time.perf_counter()
        make_input(source, args.rows, args.offset)
        print(f"made {source} ({source.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    out = args.work / f"out-{args.rows}-from-{args.offset}-{args.format}"
    shutil.rmtree(out, ignore_errors=True)
    guard = Guard(family="classifier", threads=args.threads, policy=Policy(on_unsafe=OnUnsafe.ANNOTATE))
    guard.check_batch(["warm the encoder up"])
    loaded = rss_mb()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    summary = scan(source, out, guard, output_format=args.format, batch_size=args.batch_size,
                   progress=not args.no_progress)  # fmt: skip
    seconds = time.perf_counter() - started
    sampler.stop.set()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(summary.text())
    print(f"rows {summary.rows}, {seconds:.1f} s with the summary files, {summary.rows / seconds:.1f} rows/s; "
          f"RSS after the model loaded {loaded:.0f} MB, peak RSS {peak:.0f} MB (+{peak - loaded:.0f} MB)")  # fmt: skip
    print("peak RSS by quarter of the scan: " + ", ".join(f"{q:.0f} MB" for q in sampler.quarters()))


if __name__ == "__main__":
    main()
