"""Running a blocking call against a deadline: the caller gets an answer in time, whatever the call does."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
#: The instant (``time.monotonic()``) by which every guard check started in this context must end, if any.
_CHECKS_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("guardsdk_checks_deadline",
                                                                               default=None)  # fmt: skip


class DeadlineExceeded(TimeoutError):
    """The call did not finish before its deadline."""


@contextlib.contextmanager
def checks_deadline(seconds: float) -> Iterator[None]:
    """Every guard check started inside the block (in this thread or task, and in what they start) ends within
    ``seconds`` from now, or by its own deadline if that is sooner: undecided past it, its model work stopped (a
    service's request deadline, or an app's budget for one user request). Blocks nest: the sooner one holds."""
    instant = time.monotonic() + max(seconds, 0.0)
    outer = _CHECKS_DEADLINE.get()
    token = _CHECKS_DEADLINE.set(instant if outer is None else min(outer, instant))
    try:
        yield
    finally:
        _CHECKS_DEADLINE.reset(token)


def within_checks_deadline(seconds: float) -> float:
    """``seconds``, or what is left of an enclosing :func:`checks_deadline` where that is less (never below 0)."""
    instant = _CHECKS_DEADLINE.get()
    return seconds if instant is None else max(min(seconds, instant - time.monotonic()), 0.0)


def call_before_deadline(fn: Callable[[], T], seconds: float) -> T:
    """``fn()``, run in a daemon thread; raises :class:`DeadlineExceeded` after ``seconds``.

    A call past its deadline runs on in the background (its result is dropped); being a daemon
    thread, it never keeps the process alive. Context variables are carried into the thread.
    """
    box: dict[str, object] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="guardsdk-check", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise DeadlineExceeded(f"ran past its deadline of {seconds:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def call_all_before_deadline(
    calls: list[Callable[[], T]], seconds: float, max_concurrency: int
) -> list[T | BaseException]:
    """Each call's result, or the exception it raised, or :class:`DeadlineExceeded` if it was not done in
    ``seconds``; at most ``max_concurrency`` run at once, each in a daemon thread."""
    deadline = time.monotonic() + max(seconds, 0.0)
    results: list[T | BaseException] = [DeadlineExceeded(f"not done within {seconds:g}s")] * len(calls)
    gate = threading.Semaphore(max(max_concurrency, 1))
    context = contextvars.copy_context()

    def run(index: int, fn: Callable[[], T]) -> None:
        if not gate.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return
        try:
            if time.monotonic() < deadline:
                results[index] = context.copy().run(fn)
        except BaseException as exc:  # handed to the caller
            results[index] = exc
        finally:
            gate.release()

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return list(results)
