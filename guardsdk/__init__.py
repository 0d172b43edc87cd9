"""guardsdk: reasoning-based safety guards (GuardReasoner, and other guard families) around LLM calls.

The names here are what an app imports; the rest lives in its wing (``guardsdk.detectors``, ``guardsdk.families``,
``guardsdk.backends``, ``guardsdk.integrations``, ``guardsdk.service``, ``guardsdk.eval``; docs/architecture.md).
"""

from __future__ import annotations

import importlib
import warnings
from importlib import metadata as _metadata
from typing import Any

from guardsdk.cache import VerdictCache
from guardsdk.errors import (
    BackendError,
    GuardBlocked,
    GuardError,
    InvalidInputError,
    ModelNotFoundError,
    UncheckedFieldError,
    UnguardedEndpointError,
)
from guardsdk.families import register_family
from guardsdk.guard import Guard
from guardsdk.policy import LongInput, OnUndecided, OnUnsafe, Policy
from guardsdk.verdict import (
    PROMPT_HARM,
    REFUSAL,
    RESPONSE_HARM,
    TASKS,
    Decision,
    Failure,
    Label,
    ParseStatus,
    Task,
    Verdict,
)

try:
    __version__ = _metadata.version("guardsdk")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: Names this package exported before they moved to their wing: still importable for one release, with a warning.
_MOVED = {
    "INSTRUCTION": "guardsdk.families.guardreasoner.template",
    "build_input": "guardsdk.families.guardreasoner.template",
    "parse_output": "guardsdk.families.guardreasoner.parser",
    "GuardFamily": "guardsdk.families",
    "get_family": "guardsdk.families",
    "NOT_APPLICABLE": "guardsdk.verdict",
    "Cascade": "guardsdk.detectors",
    "Detector": "guardsdk.detectors",
    "Ensemble": "guardsdk.detectors",
    "GenerativeDetector": "guardsdk.detectors",
    "VerdictFirst": "guardsdk.detectors",
    "as_detector": "guardsdk.detectors",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(f"guardsdk.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'guardsdk' has no attribute {name!r}")


__all__ = [
    "PROMPT_HARM",
    "REFUSAL",
    "RESPONSE_HARM",
    "TASKS",
    "BackendError",
    "Decision",
    "Failure",
    "Guard",
    "GuardBlocked",
    "GuardError",
    "InvalidInputError",
    "Label",
    "LongInput",
    "ModelNotFoundError",
    "OnUndecided",
    "OnUnsafe",
    "ParseStatus",
    "Policy",
    "Task",
    "UncheckedFieldError",
    "UnguardedEndpointError",
    "Verdict",
    "VerdictCache",
    "__version__",
    "register_family",
]
