"""The classifier: MiniLM sentence embeddings and a calibrated head per task (no reasoning).

Not a generative :class:`~guardsdk.families.base.GuardFamily` (nothing is rendered or parsed): it is a
:class:`~guardsdk.detectors.base.Detector` of its own, chosen by ``family="classifier"`` and used by ``Guard()``
when no GuardReasoner weights are found (``detector.ClassifierDetector``). Importing this package loads no torch;
loading a detector does.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CLASSIFIER = "classifier"
#: The heads shipped in the package (trained by ``guardsdk-train classifier trainer/configs/classifier-minilm.yaml``).
BUNDLED_HEADS = "guard-classifier-minilm"


def bundled_heads_path() -> Path:
    """The folder of the classifier heads shipped inside the package."""
    return Path(str(resources.files("guardsdk") / "models" / BUNDLED_HEADS))


__all__ = ["BUNDLED_HEADS", "CLASSIFIER", "bundled_heads_path"]
