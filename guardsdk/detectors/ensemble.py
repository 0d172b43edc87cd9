"""An ensemble: several detectors check every input; a task is safe only when every one says so."""

from __future__ import annotations

import asyncio
import dataclasses

from guardsdk.detectors.base import Detector, Pair
from guardsdk.detectors.long_input import merge_verdicts
from guardsdk.policy import Policy
from guardsdk.verdict import Verdict


class Ensemble:
    """Several detectors check every input; per task, any positive wins, then any undecided, else negative:
    a task is safe only when every detector says so."""

    def __init__(self, detectors: list[Detector]) -> None:
        if len(detectors) < 2:
            raise ValueError("an ensemble needs at least two detectors")
        self.detectors = detectors
        self.name = " + ".join(d.name for d in detectors)

    def _merge(self, per_detector: list[list[Verdict]], pairs: list[Pair]) -> list[Verdict]:
        merged = []
        for (_, response), verdicts in zip(pairs, zip(*per_detector, strict=True), strict=True):
            headings = [f"guardsdk detector {d.name}" for d in self.detectors]
            combined = merge_verdicts(list(verdicts), response is not None, headings)
            merged.append(dataclasses.replace(combined, detector=self.name))
        return merged

    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        return self._merge([d.detect(pairs, policy, deadline) for d in self.detectors], pairs)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        results = await asyncio.gather(*(d.adetect(pairs, policy, deadline) for d in self.detectors))
        return self._merge(list(results), pairs)

    def close(self) -> None:
        for detector in self.detectors:
            detector.close()


__all__ = ["Ensemble"]
