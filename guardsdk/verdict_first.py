"""Moved to :mod:`guardsdk.detectors.verdict_first` (kept for one release; importing it warns)."""

import warnings

from guardsdk.detectors.verdict_first import DEFAULT_REASON_WHEN, DEFAULT_UNCERTAIN_BAND, REASON_WHEN, VerdictFirst  # noqa: F401

warnings.warn("guardsdk.verdict_first moved to guardsdk.detectors.verdict_first", DeprecationWarning, stacklevel=2)
