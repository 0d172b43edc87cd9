"""Load and fault run of ``guardsdk serve`` on 127.0.0.1: N requests at concurrency C through the check API and
the guarded proxy, with the bundled classifier as the guard and the bundled guardreasoner-tiny GGUF on a real
llama_cpp.server as the upstream LLM. Every prompt is distinct (no cache hits). Prints, per route: requests,
answers by status, lost requests (no answer), p50 / p99 latency, requests per second.

    .venv/bin/python benchmarks/service/load_service.py --requests 1000 --concurrency 32

``--compare-batching`` runs the check API with micro-batching off and on, side by side in one run (alternating,
``--rounds`` times; each run a fresh service process, warmed up with 64 requests, then new prompts), prints each run
and the on/off ratio of requests per second, and no proxy run:

    .venv/bin/python benchmarks/service/load_service.py --compare-batching --requests 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import TESTS, importable

TOPICS = ["bake banana bread", "plant tomatoes", "learn the violin", "fix a bike chain", "write a cover letter",
          "brew green tea", "train for a 10k", "paint a fence", "make a budget", "clean a cast iron pan"]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


async def hammer(url: str, path: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Send every body at ``concurrency``; each request ends in a status or an exception (lost)."""
    import httpx

    gate = asyncio.Semaphore(concurrency)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(body: dict[str, Any]) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    answer = await client.post(path, json=body)
                    statuses[str(answer.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[f"lost ({type(exc).__name__})"] += 1
                    return
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(body) for body in bodies))
        elapsed = time.perf_counter() - started
    lost = sum(n for status, n in statuses.items() if status.startswith("lost"))
    p50, p99 = (round(percentile(latencies, q) * 1000, 1) for q in (0.5, 0.99))
    return {"route": path, "requests": len(bodies), "statuses": dict(statuses), "lost": lost, "p50_ms": p50,
            "p99_ms": p99, "requests_per_s": round(len(bodies) / elapsed, 1), "concurrency": concurrency}  # fmt: skip


def run(requests: int, concurrency: int, proxy_requests: int | None = None) -> list[dict[str, Any]]:
    """Start the service (and its upstream) on 127.0.0.1, hammer both routes, stop everything."""
    importable(TESTS)  # servers.py: the tests' live service and llama.cpp server
    from servers import LiveService, LlamaCppServer

    from guardsdk import Guard
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.service import ServiceConfig, create_app

    upstream = LlamaCppServer(bundled_tiny_path(), alias="llm")
    guard = Guard(family="classifier")
    config = ServiceConfig(upstream=upstream.base_url, max_concurrency=4, max_queue=4 * concurrency)
    prompts = [f"Question {i}: how do I {TOPICS[i % len(TOPICS)]}?" for i in range(2 * requests)]
    prompts, later = prompts[:requests], prompts[requests:]  # the proxy's prompts are new too: no cache hits
    try:
        with LiveService(create_app(guard, config)) as live:
            checks = asyncio.run(hammer(live.url, "/v1/check", [{"prompt": p} for p in prompts], concurrency))
            n = requests if proxy_requests is None else proxy_requests
            chats = [{"model": "llm", "max_tokens": 8, "temperature": 0,
                      "messages": [{"role": "user", "content": p}]} for p in later[:n]]  # fmt: skip
            proxied = asyncio.run(hammer(live.url, "/v1/chat/completions", chats, concurrency))
    finally:
        upstream.stop()
    return [checks, proxied]


_SERVE = """
import json, logging, sys
from guardsdk import Guard
from guardsdk.service import ServiceConfig, serve
logging.disable(logging.WARNING)  # no per-request log lines (blocks are WARNING): the load, not the logging
serve(Guard(family="classifier"), ServiceConfig(**json.loads(sys.argv[1])))
"""


class ServiceProcess:
    """``guardsdk.service.serve`` with the bundled classifier in a process of its own on 127.0.0.1 (as deployed: the
    clients' work is not in its interpreter), up once ``/readyz`` answers."""

    def __init__(self, **config: Any) -> None:
        import subprocess
        import tempfile

        from servers import free_port, wait_ready

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        arguments = json.dumps({"port": port, **config})
        self.log = Path(tempfile.mkstemp(prefix="guardsdk-load-", suffix=".log")[1])  # the tail, should it not start
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-c", _SERVE, arguments], stderr=log)
        try:
            wait_ready(self.url, self.process, self.log)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def compare_batching(requests: int, concurrency: int, rounds: int, max_items: int = 32) -> list[dict[str, Any]]:
    """The check API with micro-batching off and on (the same settings but ``batch_max_items``), alternating, each run
    on a fresh service process and new prompts (no cache hits)."""
    importable(TESTS)
    rows: list[dict[str, Any]] = []
    for round_ in range(rounds):
        for batch in (1, max_items):
            config = {"max_concurrency": 4, "max_queue": 4 * concurrency, "batch_max_items": batch}
            offset = (2 * round_ + (batch > 1)) * requests
            prompts = [f"Question {offset + i}: how do I {TOPICS[i % len(TOPICS)]}?" for i in range(requests)]
            with ServiceProcess(**config) as live:
                asyncio.run(hammer(live.url, "/v1/check", [{"prompt": f"warm-up {i}"} for i in range(64)], concurrency))
                row = asyncio.run(hammer(live.url, "/v1/check", [{"prompt": p} for p in prompts], concurrency))
            rows.append({"batching": "off" if batch == 1 else f"on (max {batch} checks, window 2 ms)",
                         "round": round_ + 1, **row})  # fmt: skip
    for round_ in range(rounds):
        off, on = (r["requests_per_s"] for r in rows[2 * round_ : 2 * round_ + 2])
        rows.append({"round": round_ + 1, "ratio_on_over_off": round(on / off, 2)})
    on_all = sum(r["requests_per_s"] for r in rows[1 : 2 * rounds : 2])
    off_all = sum(r["requests_per_s"] for r in rows[0 : 2 * rounds : 2])
    rows.append({"rounds": rounds, "ratio_on_over_off_all_rounds": round(on_all / off_all, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--proxy-requests", type=int, default=None, help="default: --requests")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--compare-batching", action="store_true", help="the check API with batching off vs on")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs with --compare-batching")
    args = parser.parse_args()
    if args.compare_batching:
        for row in compare_batching(args.requests, args.concurrency, args.rounds):
            print(json.dumps(row))
        return
    for row in run(args.requests, args.concurrency, args.proxy_requests):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
