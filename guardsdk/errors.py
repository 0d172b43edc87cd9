"""Typed errors raised by guardsdk."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guardsdk.verdict import Verdict


class GuardError(Exception):
    """Base class of every guardsdk error."""


class InvalidInputError(GuardError, ValueError):
    """The prompt or response cannot be checked (wrong type, NUL, lone surrogate, empty prompt)."""


class BackendError(GuardError):
    """The model backend failed to produce an output."""


class ModelNotFoundError(BackendError, FileNotFoundError):
    """The model file, folder or hub id could not be found or loaded."""


class UnguardedEndpointError(GuardError, AttributeError):
    """An LLM-calling entry point that guardsdk does not guard; it raises rather than pass through unchecked."""


class GuardBlocked(GuardError):
    """The policy blocked a prompt or response; ``verdict`` says why."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        reason = verdict.decision.reason if verdict.decision else "blocked"
        super().__init__(reason)


def describe(exc: BaseException) -> str:
    """``"ErrorType: message"`` (or just the type when there is no message), for verdicts and logs."""
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
