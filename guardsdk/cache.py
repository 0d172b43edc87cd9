"""A verdict cache: identical checks on the same detector are answered from memory (LRU with a TTL).

A key is a SHA-256 hash of the detector (its name and identity: family and model), the guard's mode and input
budget, the policy settings that change how an input is checked, and the exact prompt and response — which is
everything the family renders into the model's input. Values are verdicts before the policy's decision (each
hit is decided again under the caller's policy). Only verdicts that ran to an answer are kept: a deadline or a
backend failure is never served again from memory. Thread-safe; ``hits`` and ``misses`` count lookups.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time

from cachetools import TTLCache

from guardsdk.verdict import Verdict

#: Defaults: enough for a service's repeated system-prompt and template checks, bounded in memory.
DEFAULT_MAX_ENTRIES = 4096
DEFAULT_TTL_S = 600.0


class VerdictCache:
    """``max_entries`` verdicts at most (the least recently used go first), each for ``ttl_s`` seconds."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_s: float = DEFAULT_TTL_S) -> None:
        if max_entries < 1 or not 0 < ttl_s < float("inf"):
            raise ValueError("a verdict cache needs max_entries >= 1 and a finite ttl_s > 0")
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self._entries: TTLCache[str, Verdict] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=time.monotonic)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(scope: object, prompt: str, response: str | None) -> str:
        """The cache key of one check; ``scope`` is everything but the texts (JSON-able)."""
        blob = json.dumps([scope, prompt, response], ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str) -> Verdict | None:
        """The cached verdict (marked ``cached``), or None."""
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is None:
                self.misses += 1
                return None
            self.hits += 1
        return dataclasses.replace(verdict, cached=True, latency_s=0.0)

    def put(self, key: str, verdict: Verdict) -> None:
        """Keep ``verdict`` if it ran to an answer (no failure, no error)."""
        if verdict.failure is not None or verdict.error is not None:
            return
        with self._lock:
            self._entries[key] = dataclasses.replace(verdict, decision=None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class CacheLookup:
    """One batch's pass through an optional cache: ``misses`` (the pairs to check, in order), then ``fill`` with
    their verdicts gives every pair's verdict in order, the fresh ones stored."""

    def __init__(self, cache: VerdictCache | None, scope: object, pairs: list[tuple[str, str | None]]) -> None:
        self.cache = cache
        self.keys: list[str] = []
        self.cached: list[Verdict | None] = [None] * len(pairs)
        if cache is not None:  # (not "if cache": an empty cache is falsy, it has a length)
            self.keys = [VerdictCache.key(scope, prompt, response) for prompt, response in pairs]
            self.cached = [cache.get(key) for key in self.keys]
        self.misses = [pair for pair, verdict in zip(pairs, self.cached, strict=True) if verdict is None]

    def fill(self, fresh: list[Verdict]) -> list[Verdict]:
        """Every pair's verdict: the cached ones, and ``fresh`` (one per miss, in order), which are stored."""
        computed = iter(fresh)
        verdicts = [verdict if verdict is not None else next(computed) for verdict in self.cached]
        if self.cache is not None:
            for key, was_cached, verdict in zip(self.keys, self.cached, verdicts, strict=True):
                if was_cached is None:
                    self.cache.put(key, verdict)
        return verdicts
