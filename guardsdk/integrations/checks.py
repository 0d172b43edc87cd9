"""What an integration needs of a guard: the :class:`Checks` protocol.

The integrations (decorator, OpenAI client, LangChain, streaming) depend on this interface, not on the
:class:`~guardsdk.guard.Guard` class, so they import nothing of it (the Guard's ``protect``/``wrap`` import
them, never the other way round) and work with any object that checks the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from guardsdk.policy import Policy
from guardsdk.verdict import Verdict

logger = logging.getLogger("guardsdk")


class Checks(Protocol):
    """A guard as the integrations use it; :class:`~guardsdk.guard.Guard` is one."""

    policy: Policy

    def check(self, prompt: str, response: str | None = None) -> Verdict:
        """Check a prompt, or a prompt and its response; raises GuardBlocked when the policy blocks."""
        ...

    async def acheck(self, prompt: str, response: str | None = None) -> Verdict:
        """Async twin of :meth:`check`."""
        ...

    def check_batch(self, items: Sequence[tuple[str, str | None]]) -> list[Verdict]:
        """Check many (prompt, response) pairs; never raises GuardBlocked: each verdict carries its decision."""
        ...

    async def acheck_batch(self, items: Sequence[tuple[str, str | None]]) -> list[Verdict]:
        """Async twin of :meth:`check_batch`."""
        ...

    def with_policy(self, policy: Policy) -> Checks:
        """The same guard under another policy."""
        ...

    def response_guard(self) -> Checks | None:
        """The same guard gating the response tasks its policy gates; None when it gates none."""
        ...

    def count_event(self, name: str) -> None:
        """Count an event (an opt-in path) in the guard's stats."""
        ...


def prompt_stage(guard: Checks, where: str) -> bool:
    """Whether an integration checks prompts before the call: only where the policy gates ``prompt_harm`` (a prompt
    check that gates nothing would be undecided and block every call). When it does not, that is logged once here
    (at WARNING: the operator chose gates that leave prompts unjudged); each skipped check is counted as
    ``ungated_prompts`` by the caller."""
    if guard.policy.gates_prompt:
        return True
    logger.warning("%s: the policy gates no prompt task (%s): prompts are not checked before the call", where,
                   ", ".join(sorted(guard.policy.gates)))  # fmt: skip
    return False


def response_stage(guard: Checks, where: str) -> Checks | None:
    """The guard an integration checks responses with (gating the policy's response tasks), or None — logged once
    here at WARNING — when the policy gates none; each skipped check is counted as ``ungated_responses``."""
    responses = guard.response_guard()
    if responses is None:
        logger.warning("%s: the policy gates no response task (%s): responses are not checked", where,
                       ", ".join(sorted(guard.policy.gates)))  # fmt: skip
    return responses
