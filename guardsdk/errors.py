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


class GuardBlocked(GuardError):
    """The policy blocked a prompt or response; ``verdict`` says why."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        reason = verdict.decision.reason if verdict.decision else "blocked"
        super().__init__(reason)
