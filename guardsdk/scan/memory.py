"""Giving the memory a batch freed back to the system, so that a long scan's resident memory follows its batches
rather than the largest one it ever met."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

#: glibc's ``mallopt`` parameter number of the size from which an allocation gets pages of its own (``mmap``).
_M_MMAP_THRESHOLD = -3
#: 64 KB: a tensor of a batch's hidden states (tens of MB) is mapped and unmapped with its batch.
MMAP_THRESHOLD_BYTES = 65_536


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(None), name)  # glibc
    except (OSError, AttributeError):  # musl, macOS, Windows: nothing to call
        return None


def release_free_memory() -> None:
    """glibc's ``malloc_trim(0)``: the heap's free pages go back to the system. Without it the encoder's batches of
    long rows (windows of 256 tokens) leave glibc's heap at their high-water mark: 1,000 long pool rows peaked at
    597 / 624 / 639 / 698 MB by quarter of the run (docs/scan.md). A few milliseconds a batch; nothing elsewhere."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


def map_large_blocks() -> None:
    """Process-wide, for a process that only scans (the ``guardsdk scan`` command; the Python API leaves the
    allocator alone): glibc serves blocks of 64 KB and more from pages of their own, returned the moment a batch
    frees them, instead of from a heap that stays at its largest. 1,000 long pool rows peaked by quarter of the run at
    524 / 534 / 534 / 538 MB so (as ``MALLOC_MMAP_THRESHOLD_=65536``), against 597 / 624 / 639 / 698 MB."""
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


__all__ = ["MMAP_THRESHOLD_BYTES", "map_large_blocks", "release_free_memory"]
