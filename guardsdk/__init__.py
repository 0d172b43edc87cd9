"""guardsdk: reasoning-based safety guards (GuardReasoner) in front of and behind LLM calls."""

from guardsdk.errors import BackendError, GuardBlocked, GuardError, InvalidInputError, ModelNotFoundError
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import INSTRUCTION, build_input
from guardsdk.guard import Guard
from guardsdk.policy import OnUndecided, OnUnsafe, Policy
from guardsdk.verdict import NOT_APPLICABLE, PROMPT_HARM, REFUSAL, RESPONSE_HARM, TASKS, Decision, ParseStatus, Verdict

__version__ = "0.1.0"

__all__ = [
    "INSTRUCTION",
    "NOT_APPLICABLE",
    "PROMPT_HARM",
    "REFUSAL",
    "RESPONSE_HARM",
    "TASKS",
    "BackendError",
    "Decision",
    "Guard",
    "GuardBlocked",
    "GuardError",
    "InvalidInputError",
    "ModelNotFoundError",
    "OnUndecided",
    "OnUnsafe",
    "ParseStatus",
    "Policy",
    "Verdict",
    "build_input",
    "parse_output",
]
