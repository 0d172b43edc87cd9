"""The :class:`Detector` protocol: anything that turns (prompt, response) pairs into verdicts, before any policy.

The guard (:class:`~guardsdk.Guard`) holds a detector, a policy and the deadline. Built in: the generative detector
(a guard family's model on a backend), the classifier, an ensemble, a cascade and verdict-first; a detector of your
own is any object with these members (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from guardsdk.deadline import DeadlineExceeded, call_before_deadline
from guardsdk.errors import describe
from guardsdk.policy import Policy
from guardsdk.verdict import Failure, Verdict

Pair = tuple[str, "str | None"]


@runtime_checkable
class Detector(Protocol):
    """Pairs in, undecided-or-labelled verdicts out (no decision yet); never raises for one bad input."""

    name: str

    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        """One verdict per pair; ``deadline`` is a ``time.monotonic()`` instant."""
        ...

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        """Async twin of :meth:`detect`."""
        ...

    def close(self) -> None: ...


def _undecided_all(
    detector: Detector, pairs: list[Pair], error: str, started: float, failure: Failure
) -> list[Verdict]:
    latency = time.monotonic() - started
    return [Verdict.undecided(has_response=r is not None, error=error, detector=detector.name, latency_s=latency,
                              failure=failure) for _, r in pairs]  # fmt: skip


def _one_each(detector: Detector, pairs: list[Pair], verdicts: object, started: float) -> list[Verdict]:
    """The detector's verdicts, or undecided ones (a backend failure) where it broke its protocol: not a list of one
    verdict per pair."""
    if isinstance(verdicts, list) and len(verdicts) == len(pairs) and all(isinstance(v, Verdict) for v in verdicts):
        return verdicts
    return _undecided_all(detector, pairs, f"detector {detector.name} did not give one verdict per input", started,
                          Failure.BACKEND)  # fmt: skip


def detect_within(detector: Detector, pairs: list[Pair], policy: Policy, seconds: float) -> list[Verdict]:
    """``detector.detect`` run in a thread that may take ``seconds``: one verdict per pair whatever happens — past
    the deadline, undecided (``failure="deadline"``, none started where no time is left); a detector that breaks its
    protocol by raising, undecided (``failure="backend"``)."""
    if not pairs:
        return []
    started = time.monotonic()
    if seconds <= 0:
        return _undecided_all(detector, pairs, "check started past its deadline", started, Failure.DEADLINE)
    try:
        verdicts = call_before_deadline(lambda: detector.detect(pairs, policy, started + seconds), seconds)
        return _one_each(detector, pairs, verdicts, started)
    except DeadlineExceeded:
        return _undecided_all(detector, pairs, f"check ran past its deadline of {seconds:g}s", started,
                              Failure.DEADLINE)  # fmt: skip
    except Exception as exc:
        return _undecided_all(detector, pairs, describe(exc), started, Failure.BACKEND)


async def adetect_within(detector: Detector, pairs: list[Pair], policy: Policy, seconds: float) -> list[Verdict]:
    """Async twin of :func:`detect_within` (``detector.adetect`` under ``asyncio.wait_for``)."""
    if not pairs:
        return []
    started = time.monotonic()
    if seconds <= 0:
        return _undecided_all(detector, pairs, "check started past its deadline", started, Failure.DEADLINE)
    try:
        verdicts = await asyncio.wait_for(detector.adetect(pairs, policy, started + seconds), seconds)
        return _one_each(detector, pairs, verdicts, started)
    except asyncio.TimeoutError:
        return _undecided_all(detector, pairs, f"check ran past its deadline of {seconds:g}s", started,
                              Failure.DEADLINE)  # fmt: skip
    except Exception as exc:
        return _undecided_all(detector, pairs, describe(exc), started, Failure.BACKEND)


__all__ = ["Detector", "Pair", "adetect_within", "detect_within"]
