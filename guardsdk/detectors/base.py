"""The :class:`Detector` protocol: anything that turns (prompt, response) pairs into verdicts, before any policy.

The guard (:class:`~guardsdk.Guard`) holds a detector, a policy and the deadline. Built in: the generative detector
(a guard family's model on a backend), the classifier, an ensemble, a cascade and verdict-first; a detector of your
own is any object with these members (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from guardsdk.deadline import call_before_deadline
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


class _Run:
    """One run of a detector against a deadline: what it gives back in every case (one verdict per pair)."""

    def __init__(self, detector: Detector, pairs: list[Pair], seconds: float) -> None:
        self.detector, self.pairs, self.seconds = detector, pairs, seconds
        self.started = time.monotonic()
        self.deadline = self.started + seconds

    def undecided(self, error: str, failure: Failure) -> list[Verdict]:
        latency = time.monotonic() - self.started
        return [Verdict.undecided(has_response=r is not None, error=error, detector=self.detector.name,
                                  latency_s=latency, failure=failure) for _, r in self.pairs]  # fmt: skip

    def skipped(self) -> list[Verdict] | None:
        """The answer without running the detector: nothing to check, or no time left; else None."""
        if not self.pairs:
            return []
        return self.undecided("check started past its deadline", Failure.DEADLINE) if self.seconds <= 0 else None

    def ended(self, verdicts: object) -> list[Verdict]:
        """The detector's verdicts, or undecided ones (a backend failure) where it broke its protocol: not a list of
        one verdict per pair."""
        if (
            isinstance(verdicts, list)
            and len(verdicts) == len(self.pairs)
            and all(isinstance(v, Verdict) for v in verdicts)
        ):
            return verdicts
        return self.undecided(f"detector {self.detector.name} did not give one verdict per input", Failure.BACKEND)

    def failed(self, exc: Exception) -> list[Verdict]:
        """Past the deadline (a ``TimeoutError``), undecided with ``failure="deadline"``; any other error, a backend
        failure."""
        if isinstance(exc, TimeoutError):  # DeadlineExceeded, asyncio's timeout
            return self.undecided(f"check ran past its deadline of {self.seconds:g}s", Failure.DEADLINE)
        return self.undecided(describe(exc), Failure.BACKEND)


def detect_within(detector: Detector, pairs: list[Pair], policy: Policy, seconds: float) -> list[Verdict]:
    """``detector.detect`` run in a thread that may take ``seconds``: one verdict per pair whatever happens — past
    the deadline, undecided (``failure="deadline"``, none started where no time is left); a detector that breaks its
    protocol (raises, or gives a wrong number of verdicts), undecided (``failure="backend"``)."""
    run = _Run(detector, pairs, seconds)
    skipped = run.skipped()
    if skipped is not None:
        return skipped
    try:
        return run.ended(call_before_deadline(lambda: detector.detect(pairs, policy, run.deadline), seconds))
    except Exception as exc:
        return run.failed(exc)


async def adetect_within(detector: Detector, pairs: list[Pair], policy: Policy, seconds: float) -> list[Verdict]:
    """Async twin of :func:`detect_within` (``detector.adetect`` under ``asyncio.wait_for``)."""
    run = _Run(detector, pairs, seconds)
    skipped = run.skipped()
    if skipped is not None:
        return skipped
    try:
        return run.ended(await asyncio.wait_for(detector.adetect(pairs, policy, run.deadline), seconds))
    except Exception as exc:
        return run.failed(exc)


__all__ = ["Detector", "Pair", "adetect_within", "detect_within"]
