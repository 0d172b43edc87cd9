"""Moved to :mod:`guardsdk.detectors.resolve` (kept for one release; importing it warns)."""

import warnings

from guardsdk.detectors.resolve import *  # noqa: F403
from guardsdk.detectors.resolve import __all__ as __all__
from guardsdk.detectors.resolve import classifier_available, explicit, load_backend, log_choice  # noqa: F401

warnings.warn("guardsdk.model_resolution moved to guardsdk.detectors.resolve", DeprecationWarning, stacklevel=2)
