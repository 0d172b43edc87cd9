"""The :class:`Detector` protocol: anything that turns (prompt, response) pairs into verdicts, before any policy.

The guard (:class:`~guardsdk.Guard`) holds a detector, a policy and the deadline. Built in: the generative detector
(a guard family's model on a backend), the classifier, an ensemble, a cascade and verdict-first; a detector of your
own is any object with these members (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from guardsdk.policy import Policy
from guardsdk.verdict import Verdict

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


__all__ = ["Detector", "Pair"]
