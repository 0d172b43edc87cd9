"""Giving the memory a batch freed back to the system, so that a long scan's resident memory follows its batches
rather than the largest one it ever met."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


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


__all__ = ["release_free_memory"]
