"""llama.cpp builds side by side, in one run: the 1B-shape component costs of benchmarks/speed/bench_speed.py (prefill,
one decode step, a verify batch) under each llama-cpp-python wheel, alternating builds round by round so that
the machine's drift falls on all of them alike.

Each ``--build NAME=WHEEL_DIR`` (a folder holding one llama_cpp_python wheel, e.g. the set-up's cache
``~/.cache/guardsdk/wheels/llama-cpp-python-0.3.36-nollamafile-avx2``) is installed without dependencies into a
temporary folder that goes first on a child process's path; the child measures and prints JSON.

Usage: .venv/bin/python benchmarks/speed/bench_llama_builds.py --gguf /tmp/gr1b/gr1b-shape-Q4_K_M.gguf \\
           --build avx2=DIR --build avx512=DIR [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from

KEYS = ("prefill_8", "prefill_32", "prefill_128", "step", "verify_8")


def child(gguf: str, threads: int) -> None:
    """Measure under the llama_cpp first on the path; print its system info and costs as JSON."""
    import llama_cpp

    from benchmarks.speed.bench_speed import component_costs

    costs = component_costs(Path(gguf), threads)
    print(json.dumps({"system": llama_cpp.llama_print_system_info().decode().strip(), "costs": costs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--build", action="append", default=[], metavar="NAME=WHEEL_DIR")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.gguf, args.threads)
        return
    if not args.build:
        parser.error("give at least one --build NAME=WHEEL_DIR")
    builds = dict(item.split("=", 1) for item in args.build)
    with tempfile.TemporaryDirectory() as tmp:
        sites = {}
        for name, wheels in builds.items():
            wheel = next(Path(wheels).expanduser().glob("llama_cpp_python-*.whl"))
            sites[name] = Path(tmp) / name
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(sites[name]), str(wheel)]
            subprocess.run(pip, check=True)
        runs: dict[str, list[dict]] = {name: [] for name in builds}
        for _ in range(args.rounds):
            for name, site in sites.items():
                env = {
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
                }
                command = [sys.executable, __file__, "--child", "--gguf", args.gguf, "--threads", str(args.threads)]
                done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = next(iter(builds))
    medians = {name: {k: statistics.median(r["costs"][k] for r in rs) for k in KEYS} for name, rs in runs.items()}
    print(f"{args.gguf}, {args.threads} threads, medians of {args.rounds} rounds (each of 5+ timings), seconds")
    print("\n| build | " + " | ".join(KEYS) + " | prefill_32 speed-up | step speed-up |")
    print("|---" * (len(KEYS) + 3) + "|")
    for name, costs in medians.items():
        cells = " | ".join(f"{costs[k]:.3f}" for k in KEYS)
        speedups = [medians[first][k] / costs[k] for k in ("prefill_32", "step")]
        print(f"| {name} | {cells} | {speedups[0]:.2f}x | {speedups[1]:.2f}x |")
    for name, rs in runs.items():
        print(f"\n{name}: {rs[0]['system']}")


if __name__ == "__main__":
    main()
