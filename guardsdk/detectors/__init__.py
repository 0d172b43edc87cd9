"""The check engine: everything that turns (prompt, response) pairs into verdicts, before any policy is applied.

:class:`Detector` (``base``) is the protocol; the generative detector (a guard family's model on a backend), the
classifier, an ensemble, the cascade and verdict-first are detectors; ``build_detector`` composes them for a guard's
mode. Long inputs (``long_input``, ``truncation``), forced answers and label scores (``answer_scores``) and the
reasoning audit flag (``reasoning_audit``) are the steps they share. See docs/architecture.md.
"""

from __future__ import annotations

from guardsdk.detectors.base import Detector, Pair
from guardsdk.detectors.build import MODES, Mode, build_detector
from guardsdk.detectors.cascade import Cascade
from guardsdk.detectors.ensemble import Ensemble
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.detectors.resolve import Model, as_detector
from guardsdk.detectors.verdict_first import VerdictFirst

__all__ = ["MODES", "Cascade", "Detector", "Ensemble", "GenerativeDetector", "Mode", "Model", "Pair", "VerdictFirst",
           "as_detector", "build_detector"]  # fmt: skip
