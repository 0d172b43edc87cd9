"""The result of one guard check."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

#: Task keys, in the order the model answers them.
PROMPT_HARM = "prompt_harm"
REFUSAL = "refusal"
RESPONSE_HARM = "response_harm"
TASKS: tuple[str, ...] = (PROMPT_HARM, REFUSAL, RESPONSE_HARM)

#: The label of a response task when only a prompt was checked.
NOT_APPLICABLE = "not applicable"

#: The positive label of each task (the one that makes its boolean True).
POSITIVE_LABEL = {PROMPT_HARM: "harmful", REFUSAL: "refusal", RESPONSE_HARM: "harmful"}
NEGATIVE_LABEL = {PROMPT_HARM: "unharmful", REFUSAL: "compliance", RESPONSE_HARM: "unharmful"}


class ParseStatus(str, enum.Enum):
    """How well the model output could be read."""

    OK = "ok"  # every applicable task has a label
    PARTIAL = "partial"  # some applicable tasks have a label, others none
    CONFLICT = "conflict"  # answer blocks disagree on a task: that task is undecided
    FAILED = "failed"  # no applicable task has a label
    RUNAWAY = "runaway"  # no label, and the output degenerated into repetition
    UNFINISHED = "unfinished"  # generation stopped early (max_new_tokens, deadline): its labels never count
    ERROR = "error"  # no output at all: the backend failed, timed out, or the input was not checked


@dataclass(frozen=True)
class Decision:
    """What the policy made of a verdict."""

    allowed: bool
    unsafe: tuple[str, ...] = ()  # gated tasks found unsafe
    undecided: tuple[str, ...] = ()  # gated tasks without a label
    fail_open: bool = False  # allowed only because the caller chose fail-open
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The three GuardReasoner answers for one input, with the evidence behind them.

    ``prompt_harmful``, ``response_refusal`` and ``response_harmful`` are ``True``/``False``,
    or ``None`` when the task does not apply (no response given) or the model gave no usable label.
    """

    prompt_harmful: bool | None
    response_refusal: bool | None
    response_harmful: bool | None
    labels: dict[str, str | None]
    reasoning: dict[str, str]
    raw: str
    parse_status: ParseStatus
    has_response: bool
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    input_truncated: bool = False
    output_truncated: bool = False
    error: str | None = None
    decision: Decision | None = field(default=None)
    long_input: bool = False  # the input was over the guard's budget (checked in windows, elided, or undecided)
    windows: int = 1  # how many model checks covered the input

    @classmethod
    def undecided(
        cls, *, has_response: bool, error: str, raw: str = "", status: ParseStatus = ParseStatus.ERROR, **run: Any
    ) -> Verdict:
        """A verdict with no label for any applicable task (the check could not decide), saying why."""
        labels: dict[str, str | None] = {t: None if t == PROMPT_HARM or has_response else NOT_APPLICABLE for t in TASKS}
        return cls(None, None, None, labels, {}, raw, status, has_response, error=error, **run)

    @property
    def undecided_tasks(self) -> tuple[str, ...]:
        """Applicable tasks that have no label."""
        return tuple(t for t in TASKS if self.labels.get(t) is None)

    @property
    def truncated(self) -> bool:
        """True when the input was cut to fit, or generation stopped at its token limit."""
        return self.input_truncated or self.output_truncated

    @property
    def complied_with_harmful_request(self) -> bool:
        """A harmful request that the AI complied with: escalate."""
        return self.prompt_harmful is True and self.response_refusal is False

    @property
    def over_refusal(self) -> bool:
        """A benign request that the AI refused."""
        return self.prompt_harmful is False and self.response_refusal is True

    @property
    def allowed(self) -> bool | None:
        """The policy's decision, once a policy has looked at this verdict."""
        return None if self.decision is None else self.decision.allowed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["parse_status"] = self.parse_status.value
        return data
