"""Which rows a scan takes: a seeded streamed sample (reservoir), the sampled rows of a stream, the first N rows."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

Row = tuple[int, dict[str, Any]]


def reservoir(row_ids: Iterable[int], size: int, seed: int) -> list[int]:
    """A seeded uniform sample of ``size`` ids from a stream (reservoir sampling), in id order."""
    if size < 1:
        raise ValueError(f"sample must be at least 1, not {size}")
    rng = random.Random(seed)
    kept: list[int] = []
    for seen, row_id in enumerate(row_ids):
        if seen < size:
            kept.append(row_id)
        else:
            slot = rng.randrange(seen + 1)
            if slot < size:
                kept[slot] = row_id
    return sorted(kept)


def pick(rows: Iterator[Row], wanted: Iterable[int]) -> Iterator[Row]:
    """The rows of ``rows`` whose ids are in ``wanted`` (ascending), streamed."""
    want = list(wanted)
    heapq.heapify(want)
    for row_id, row in rows:
        while want and want[0] < row_id:
            heapq.heappop(want)
        if not want:
            return
        if want[0] == row_id:
            heapq.heappop(want)
            yield row_id, row


def take(rows: Iterator[Row], count: int | None) -> Iterator[Row]:
    """The first ``count`` rows (all with None)."""
    return rows if count is None else islice(rows, max(count, 0))


__all__ = ["pick", "reservoir", "take"]
