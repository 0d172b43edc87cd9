"""The classifier family: MiniLM sentence embeddings and a calibrated head per task (no reasoning).

Not a generative :class:`~guardsdk.families.base.GuardFamily` (nothing is rendered or parsed): it is a
:class:`~guardsdk.detector.Detector` of its own, chosen by ``family="classifier"`` and used by ``Guard()``
when no GuardReasoner weights are found. Importing this package loads no torch; loading a detector does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

CLASSIFIER = "classifier"

if TYPE_CHECKING:
    from guardsdk.families.classifier.detector import ClassifierDetector


def __getattr__(name: str) -> Any:
    if name == "ClassifierDetector":
        from guardsdk.families.classifier.detector import ClassifierDetector

        return ClassifierDetector
    raise AttributeError(name)


__all__ = ["CLASSIFIER", "ClassifierDetector"]
