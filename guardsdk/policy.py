"""What to do with a verdict: which checks gate, block or annotate, fail closed or open."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from guardsdk.verdict import (
    NOT_APPLICABLE,
    POSITIVE_LABEL,
    PROMPT_HARM,
    REFUSAL,
    RESPONSE_HARM,
    TASKS,
    Decision,
    Verdict,
)

#: The tasks only a response can answer: what a response check gates (the prompt was checked before the call).
RESPONSE_TASKS = frozenset({REFUSAL, RESPONSE_HARM})


class OnUnsafe(str, enum.Enum):
    """Action on an unsafe finding."""

    BLOCK = "block"  # raise GuardBlocked carrying the verdict
    ANNOTATE = "annotate"  # return the verdict; the caller decides


class LongInput(str, enum.Enum):
    """What happens to a prompt or response longer than the guard's input budget."""

    WINDOWS = "windows"  # every part is checked, window by window; any unsafe window wins (the default)
    UNDECIDED = "undecided"  # the check is undecided (and fails closed unless on_undecided says otherwise)
    ELIDE = "elide"  # opt-in: the middle is cut out unseen; an allowed verdict is logged and counted


class OnUndecided(str, enum.Enum):
    """Decision when a gated check has no answer (parse failure, timeout, backend error)."""

    FAIL_CLOSED = "fail_closed"  # treat as unsafe (the default)
    FAIL_OPEN = "fail_open"  # treat as safe, by the caller's explicit choice


@dataclass(frozen=True)
class Policy:
    """Which tasks gate, and what happens on unsafe and undecided outcomes.

    ``gates`` holds task keys from :data:`guardsdk.verdict.TASKS`; a task that does not apply to a
    check (the response tasks of a prompt-only check) never gates it, and a check that no gated task
    applies to is undecided (nothing was judged safe). ``long_input`` and ``max_windows`` say what
    happens to text over the guard's input budget (see :class:`LongInput`).

    ``thresholds`` maps a task to a probability: where a verdict carries that task's score (the classifier,
    verdict-first, or a reasoning run on a backend with token probabilities), the task is unsafe at or above
    it and safe below it, whatever the label; a task without a score keeps its label, and an undecided task
    stays undecided.
    """

    gates: frozenset[str] = frozenset({PROMPT_HARM, RESPONSE_HARM})
    on_unsafe: OnUnsafe = OnUnsafe.BLOCK
    on_undecided: OnUndecided = OnUndecided.FAIL_CLOSED
    long_input: LongInput = LongInput.WINDOWS
    max_windows: int = 8
    thresholds: Mapping[str, float] = field(default_factory=dict, hash=False)  # compared, not hashed

    def __post_init__(self) -> None:
        unknown = (set(self.gates) | set(self.thresholds)) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}")
        for task, threshold in self.thresholds.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"the threshold of {task} must be in (0, 1], not {threshold!r}")
        if not self.gates:
            raise ValueError("a policy needs at least one gate")
        if self.max_windows < 1:
            raise ValueError("max_windows must be at least 1")
        object.__setattr__(self, "gates", frozenset(self.gates))
        object.__setattr__(self, "thresholds", dict(self.thresholds))  # the caller's dict can change; this cannot
        object.__setattr__(self, "on_unsafe", OnUnsafe(self.on_unsafe))
        object.__setattr__(self, "on_undecided", OnUndecided(self.on_undecided))
        object.__setattr__(self, "long_input", LongInput(self.long_input))

    def decide(self, verdict: Verdict) -> Decision:
        """The decision for ``verdict`` under this policy."""
        gated = [t for t in TASKS if t in self.gates and verdict.labels.get(t) != NOT_APPLICABLE]
        unsafe = tuple(t for t in gated if self._positive(verdict, t))
        undecided = tuple(t for t in gated if verdict.labels.get(t) is None)
        if unsafe:
            return Decision(False, unsafe, undecided, reason=f"unsafe: {', '.join(unsafe)}")
        if not gated:
            why = verdict.error or f"no gated task ({', '.join(sorted(self.gates))}) applies to this check"
        elif undecided:
            why = verdict.error or f"parse status {verdict.parse_status.value}"
        else:
            return Decision(True, reason="safe")
        if self.on_undecided is OnUndecided.FAIL_OPEN:
            return Decision(True, (), undecided, fail_open=True, reason=f"undecided ({why}); failing open by choice")
        return Decision(False, (), undecided, reason=f"undecided ({why}); failing closed")

    @property
    def gates_prompt(self) -> bool:
        """Whether a prompt check before an LLM call decides anything under this policy (it gates ``prompt_harm``)."""
        return PROMPT_HARM in self.gates

    @property
    def response_gates(self) -> frozenset[str]:
        """The gated tasks a response check after an LLM call decides (``refusal``, ``response_harm``)."""
        return frozenset(self.gates & RESPONSE_TASKS)

    def _positive(self, verdict: Verdict, task: str) -> bool:
        label, score, threshold = verdict.labels.get(task), verdict.scores.get(task), self.thresholds.get(task)
        if label is None or score is None or threshold is None:
            return label == POSITIVE_LABEL[task]
        return not score < threshold  # a NaN score is unsafe


def stops(verdict: Verdict, policy: Policy) -> bool:
    """Whether ``policy`` stops the call behind ``verdict`` (raise, or cut the stream): a decision that does
    not allow it, under ``on_unsafe="block"``. Every integration enforces through this."""
    return verdict.decision is not None and not verdict.decision.allowed and policy.on_unsafe is OnUnsafe.BLOCK
