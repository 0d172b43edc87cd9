"""Moved to :mod:`guardsdk.detectors.cascade` (kept for one release; importing it warns)."""

import warnings

from guardsdk.detectors.cascade import DEFAULT_BAND, Cascade  # noqa: F401

warnings.warn("guardsdk.cascade moved to guardsdk.detectors.cascade", DeprecationWarning, stacklevel=2)
