"""guardsdk: reasoning-based safety guards (GuardReasoner, and other guard families) around LLM calls."""

from importlib import metadata as _metadata

from guardsdk.cache import VerdictCache
from guardsdk.detectors import Detector, Ensemble, GenerativeDetector, as_detector
from guardsdk.detectors.cascade import Cascade
from guardsdk.detectors.verdict_first import VerdictFirst
from guardsdk.errors import (
    BackendError,
    GuardBlocked,
    GuardError,
    InvalidInputError,
    ModelNotFoundError,
    UnguardedEndpointError,
)
from guardsdk.families import GuardFamily, get_family, register_family
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import INSTRUCTION, build_input
from guardsdk.guard import Guard
from guardsdk.policy import LongInput, OnUndecided, OnUnsafe, Policy
from guardsdk.verdict import (
    NOT_APPLICABLE,
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

__version__ = "0.1.0"

__all__ = [
    "INSTRUCTION",
    "NOT_APPLICABLE",
    "PROMPT_HARM",
    "REFUSAL",
    "RESPONSE_HARM",
    "TASKS",
    "BackendError",
    "Cascade",
    "Decision",
    "Detector",
    "Ensemble",
    "Failure",
    "GenerativeDetector",
    "Guard",
    "GuardBlocked",
    "GuardError",
    "GuardFamily",
    "InvalidInputError",
    "Label",
    "LongInput",
    "ModelNotFoundError",
    "OnUndecided",
    "OnUnsafe",
    "ParseStatus",
    "Policy",
    "Task",
    "UnguardedEndpointError",
    "Verdict",
    "VerdictCache",
    "VerdictFirst",
    "__version__",
    "as_detector",
    "build_input",
    "get_family",
    "parse_output",
    "register_family",
]
