"""guardsdk: reasoning-based safety guards (GuardReasoner, and other guard families) around LLM calls.

The names here are what an app imports; the rest lives in its wing (``guardsdk.detectors``, ``guardsdk.families``,
``guardsdk.backends``, ``guardsdk.integrations``, ``guardsdk.service``, ``guardsdk.eval``; docs/architecture.md).
``guardsdk.scan(...)`` (a dataset scan, docs/scan.md) is imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
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


#: Modules that moved to their wing: importable under the old name for one release, with a warning.
_MOVED_MODULES = {
    "guardsdk.detector": "guardsdk.detectors",
    "guardsdk.cascade": "guardsdk.detectors.cascade",
    "guardsdk.verdict_first": "guardsdk.detectors.verdict_first",
    "guardsdk.answer_scores": "guardsdk.detectors.answer_scores",
    "guardsdk.long_input": "guardsdk.detectors.long_input",
    "guardsdk.truncation": "guardsdk.detectors.truncation",
    "guardsdk.model_resolution": "guardsdk.detectors.resolve",
    "guardsdk.families.classifier": "guardsdk.detectors.classifier",
    "guardsdk.families.classifier.detector": "guardsdk.detectors.classifier.detector",
    "guardsdk.families.classifier.encoder": "guardsdk.detectors.classifier.encoder",
    "guardsdk.families.classifier.heads": "guardsdk.detectors.classifier.heads",
    "guardsdk.streaming": "guardsdk.integrations.streaming",
    "guardsdk.checks": "guardsdk.integrations.checks",
    "guardsdk.conversation": "guardsdk.texts.conversation",
    "guardsdk.outputs": "guardsdk.texts.outputs",
    "guardsdk.validation": "guardsdk.texts.validation",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import guardsdk.<old>`` with the module in its new home (the same object), and a warning."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in _MOVED_MODULES else None

    def create_module(self, spec: Any) -> Any:
        new = _MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: Any) -> None:
        pass  # the module in its new home ran already


sys.meta_path.insert(0, _MovedModules())  # before the path finder: no second copy of a moved module


def __getattr__(name: str) -> Any:
    if name == "scan":  # imported on first use: ``import guardsdk`` stays light (the module is callable)
        return importlib.import_module("guardsdk.scan")
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
    "scan",
]
