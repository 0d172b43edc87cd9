"""Moved to :mod:`guardsdk.detectors` (kept for one release; importing it warns)."""

import warnings

from guardsdk.detectors import Detector, Ensemble, GenerativeDetector, Model, Pair, as_detector  # noqa: F401

warnings.warn("guardsdk.detector moved to guardsdk.detectors", DeprecationWarning, stacklevel=2)
