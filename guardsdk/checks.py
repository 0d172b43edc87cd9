"""What an integration needs of a guard: the :class:`Checks` protocol.

The integrations (decorator, OpenAI client, LangChain, streaming) depend on this interface, not on the
:class:`~guardsdk.guard.Guard` class, so they import nothing of it (the Guard's ``protect``/``wrap`` import
them, never the other way round) and work with any object that checks the same way.
"""

from __future__ import annotations

from typing import Protocol

from guardsdk.policy import Policy
from guardsdk.verdict import Verdict


class Checks(Protocol):
    """A guard as the integrations use it; :class:`~guardsdk.guard.Guard` is one."""

    policy: Policy

    def check(self, prompt: str, response: str | None = None) -> Verdict:
        """Check a prompt, or a prompt and its response; raises GuardBlocked when the policy blocks."""
        ...

    async def acheck(self, prompt: str, response: str | None = None) -> Verdict:
        """Async twin of :meth:`check`."""
        ...

    def with_policy(self, policy: Policy) -> Checks:
        """The same guard under another policy."""
        ...

    def response_guard(self) -> Checks:
        """The same guard gating the response's harmfulness only."""
        ...

    def count_event(self, name: str) -> None:
        """Count an event (an opt-in path) in the guard's stats."""
        ...
