"""Measure what one ``guardsdk serve`` replica needs, for the resource requests in deploy/k8s/deployment.yaml:
resident memory (RSS) after start and its peak under load, and CPU (cores used) while serving distinct check
requests at a given concurrency. Linux only (reads /proc). Prints one JSON object.

    .venv/bin/python deploy/measure_serve.py --requests 600 --concurrency 16 [-- --family classifier ...]

Arguments after ``--`` go to ``guardsdk serve`` (default: the bundled classifier).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, requests: int, concurrency: int) -> dict[str, int]:
    """``requests`` distinct checks at ``concurrency``; statuses counted."""
    statuses: dict[str, int] = {}
    queue = list(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            i = queue.pop()
            body = {"prompt": f"Request {i}: how do I bake banana bread for {i % 37 + 2} people?"}
            try:
                status = str((await client.post(url, json=body)).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("serve_args", nargs="*", help="arguments of guardsdk serve (after --)")
    args = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "guardsdk", "serve", "--port", str(port),
               *(args.serve_args or ["--family", "classifier"])]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"guardsdk serve exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ready_s = time.monotonic() - started
        httpx.post(f"{base}/v1/check", json={"prompt": "warm up"}, timeout=60)
        idle_rss, cpu_before = rss_mib(process.pid), cpu_s(process.pid)
        peak = [idle_rss]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak.append(rss_mib(process.pid))

        threading.Thread(target=sample, daemon=True).start()
        began = time.monotonic()
        statuses = asyncio.run(load(f"{base}/v1/check", args.requests, args.concurrency))
        wall = time.monotonic() - began
        done.set()
        used = cpu_s(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(json.dumps({"command": command[3:], "ready_s": round(ready_s, 1), "idle_rss_mib": round(idle_rss),
                      "peak_rss_mib": round(max(peak)), "requests": args.requests, "concurrency": args.concurrency,
                      "statuses": statuses, "wall_s": round(wall, 1), "requests_per_s": round(args.requests / wall, 1),
                      "cpu_cores_used": round(used / wall, 2), "machine_cores": os.cpu_count()}))  # fmt: skip


if __name__ == "__main__":
    main()
