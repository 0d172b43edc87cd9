"""The check API's request and response bodies (they make its OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardsdk.texts.conversation import conversation_to_pair
from guardsdk.verdict import Task

#: The most inputs one batch request may hold.
MAX_BATCH = 256


class CheckItem(BaseModel):
    """One input: a ``prompt`` (and the ``response`` to it), or an OpenAI-style ``messages`` list whose final
    assistant message, if any, is the response (leading system messages are the app's and not checked)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None
    response: str | None = None
    messages: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> CheckItem:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either prompt (with an optional response) or messages")
        if self.messages is not None and self.response is not None:
            raise ValueError("with messages, the response is the final assistant message")
        return self

    def pair(self, passed: Collection[str] = ()) -> tuple[str, str | None]:
        """(prompt, response) as the guard checks them (``passed``: message fields let through unchecked)."""
        if self.messages is not None:
            return conversation_to_pair(self.messages, passed)
        return self.prompt, self.response  # type: ignore[return-value]


class CheckRequest(CheckItem):
    """``POST /v1/check``: one input; ``gates`` overrides which tasks decide (default: the service policy's)."""

    gates: list[Task] | None = Field(default=None, min_length=1)


class BatchRequest(BaseModel):
    """``POST /v1/check/batch``: up to 256 inputs checked together under one set of ``gates``."""

    model_config = ConfigDict(extra="forbid")

    items: list[CheckItem] = Field(min_length=1, max_length=MAX_BATCH)
    gates: list[Task] | None = Field(default=None, min_length=1)


class VerdictOut(BaseModel):
    """A verdict: the three answers (``null`` when a task does not apply or was not decided), their scores where
    the guard gives probabilities, the reasoning (``withheld`` for a check the policy did not allow, unless the
    operator exposes it), the policy's decision, and what the check cost."""

    prompt_harmful: bool | None
    response_refusal: bool | None
    response_harmful: bool | None
    labels: dict[str, str | None]
    scores: dict[str, float]
    reasoning: dict[str, str]
    raw: str
    parse_status: str
    decision: str | None
    allowed: bool | None
    fail_open: bool
    model: str
    family: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    truncated: bool
    error: str | None
    failure: str | None = Field(description="why the check could not run to an answer: deadline, backend")
    categories: list[str]
    windows: int
    escalated: bool
    cached: bool
    reasoning_conflict: list[str] = Field(description="tasks whose reasoning mostly argues against their label")
    withheld: bool = Field(description="raw and reasoning left out: the check was not allowed")


class BatchOut(BaseModel):
    verdicts: list[VerdictOut]
