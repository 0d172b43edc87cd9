"""Moved to :mod:`guardsdk.integrations.streaming` (kept for one release; importing it warns)."""

import warnings

from guardsdk.integrations.streaming import (  # noqa: F401
    StreamBlocked,
    StreamChecker,
    StreamConfig,
    StreamMode,
    aguarded_chunks,
    guarded_chunks,
)

warnings.warn("guardsdk.streaming moved to guardsdk.integrations.streaming", DeprecationWarning, stacklevel=2)
