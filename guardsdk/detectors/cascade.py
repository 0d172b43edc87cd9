"""The cascade: a fast classifier decides where it is confident, the reasoning guard decides the rest.

For each check, the classifier scores the tasks the policy gates. When every gated task's score lies at or
below ``low`` (confidently negative) or at or above ``high`` (confidently positive), the classifier's verdict
stands; otherwise — a score in between, a missing score, an undecided classifier — the reasoning detector
checks that input and its verdict replaces the classifier's, scores included (undecided stays undecided: the
classifier's guess never stands in for a reasoning guard that could not decide; its scores are noted in
``raw``). A first stage that reasons (a small GuardReasoner in front of a large one) also escalates a check
whose reasoning argues against a gated task's label (``verdict.reasoning_conflict``). ``confirm_unsafe`` also
sends every confidently unsafe verdict to the reasoning guard, to confirm it and explain why. The operating
point comes from the measured curve in docs/cascade.md, not from a guess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from guardsdk.detectors.base import Detector, Pair
from guardsdk.policy import Policy
from guardsdk.verdict import NOT_APPLICABLE, TASKS, Task, Verdict

#: The recommended operating point of the bundled classifier in front of GuardReasoner (docs/cascade.md): the
#: classifier allows alone only at p <= 0.05 and never blocks alone (below p = 1.0); on the six benchmarks
#: with published outputs it costs 0.4 (8B) / 0.75 (1B) weighted F1 against the reasoning guard alone.
DEFAULT_BAND = (0.05, 1.0)


class Cascade:
    """A :class:`~guardsdk.detectors.base.Detector`: ``fast`` first, ``reasoning`` where ``fast`` is not confident."""

    def __init__(
        self,
        fast: Detector,
        reasoning: Detector,
        *,
        band: tuple[float, float] = DEFAULT_BAND,
        confirm_unsafe: bool = False,
    ) -> None:
        low, high = band
        threshold = getattr(fast, "threshold", 0.5)
        if not 0.0 <= low <= threshold <= high <= 1.0:  # the classifier's own label stands outside the band
            raise ValueError(f"band must be 0 <= low <= {threshold:g} (the threshold) <= high <= 1, not {band!r}")
        self.fast = fast
        self.reasoning = reasoning
        self.band = (float(low), float(high))
        self.confirm_unsafe = confirm_unsafe
        self.name = f"cascade({fast.name} -> {reasoning.name})"

    def escalates(self, verdict: Verdict, policy: Policy) -> bool:
        """Whether the reasoning guard must check this input (see the module docstring)."""
        low, high = self.band
        gated = [Task(t) for t in TASKS if t in policy.gates and verdict.labels.get(t) != NOT_APPLICABLE]
        for task in gated:
            score = verdict.scores.get(task)
            if verdict.labels.get(task) is None or score is None or low < score < high:
                return True
            if task in verdict.reasoning_conflict:
                return True
            if self.confirm_unsafe and score >= high:
                return True
        return not gated

    def _combine(self, first: list[Verdict], escalated: list[int], second: Sequence[Verdict]) -> list[Verdict]:
        verdicts = [dataclasses.replace(v, detector=f"{self.name}: {v.detector}") for v in first]
        for index, verdict in zip(escalated, second, strict=True):
            shown = ", ".join(f"{task} {score:.3f}" for task, score in first[index].scores.items()) or "nothing"
            verdicts[index] = dataclasses.replace(
                verdict,
                raw=f"[guardsdk cascade: the classifier scored {shown}; the reasoning guard decided]\n\n{verdict.raw}",
                escalated=True,
                latency_s=first[index].latency_s + verdict.latency_s,
                detector=f"{self.name}: {verdict.detector or self.reasoning.name}",
            )
        return verdicts

    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        first = self.fast.detect(pairs, policy, deadline)
        escalated = [i for i, verdict in enumerate(first) if self.escalates(verdict, policy)]
        second = self.reasoning.detect([pairs[i] for i in escalated], policy, deadline) if escalated else []
        return self._combine(first, escalated, second)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        first = await self.fast.adetect(pairs, policy, deadline)
        escalated = [i for i, verdict in enumerate(first) if self.escalates(verdict, policy)]
        second = await self.reasoning.adetect([pairs[i] for i in escalated], policy, deadline) if escalated else []
        return self._combine(first, escalated, second)

    def close(self) -> None:
        self.fast.close()
        self.reasoning.close()


__all__ = ["DEFAULT_BAND", "Cascade"]
