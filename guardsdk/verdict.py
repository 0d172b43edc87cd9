"""The result of one guard check."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any


class Task(str, enum.Enum):
    """The three guard tasks, in the order GuardReasoner answers them."""

    PROMPT_HARM = "prompt_harm"  # is the user's request harmful?
    REFUSAL = "refusal"  # did the AI refuse?
    RESPONSE_HARM = "response_harm"  # is the AI's response harmful?

    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__  # shown as the plain string it equals

    @property
    def positive(self) -> Label:
        """The label that makes this task's boolean True (the one a policy gates on)."""
        return Label.REFUSAL if self is Task.REFUSAL else Label.HARMFUL

    @property
    def negative(self) -> Label:
        return Label.COMPLIANCE if self is Task.REFUSAL else Label.UNHARMFUL


class Label(str, enum.Enum):
    """A task's answer, whatever the guard family writes."""

    HARMFUL = "harmful"
    UNHARMFUL = "unharmful"
    REFUSAL = "refusal"
    COMPLIANCE = "compliance"
    NOT_APPLICABLE = "not applicable"  # a response task of a prompt-only check

    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__  # shown as the plain string it equals


#: Task keys (the enum members compare and hash as their strings).
PROMPT_HARM, REFUSAL, RESPONSE_HARM = Task.PROMPT_HARM, Task.REFUSAL, Task.RESPONSE_HARM
TASKS: tuple[Task, ...] = tuple(Task)

#: The label of a response task when only a prompt was checked.
NOT_APPLICABLE = Label.NOT_APPLICABLE

#: The positive label of each task (the one that makes its boolean True), and the negative one.
POSITIVE_LABEL = {task: task.positive for task in Task}
NEGATIVE_LABEL = {task: task.negative for task in Task}


class ParseStatus(str, enum.Enum):
    """How well the model output could be read."""

    OK = "ok"  # every applicable task has a label
    PARTIAL = "partial"  # some applicable tasks have a label, others none
    CONFLICT = "conflict"  # answer blocks disagree on a task: that task is undecided
    FAILED = "failed"  # no applicable task has a label
    RUNAWAY = "runaway"  # no label, and the output degenerated into repetition
    UNFINISHED = "unfinished"  # generation stopped early (max_new_tokens, deadline): its labels never count
    ERROR = "error"  # no output at all: the backend failed, timed out, or the input was not checked


class Failure(str, enum.Enum):
    """Why a check could not run to an answer (as opposed to an answer that could not be read)."""

    DEADLINE = "deadline"  # the check ran past its deadline
    BACKEND = "backend"  # the model backend failed (unreachable server, crashed model, broken detector)

    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__


@dataclass(frozen=True)
class Decision:
    """What the policy made of a verdict."""

    allowed: bool
    unsafe: tuple[str, ...] = ()  # gated tasks found unsafe
    undecided: tuple[str, ...] = ()  # gated tasks without a label
    fail_open: bool = False  # allowed only because the caller chose fail-open
    reason: str = ""

    @property
    def summary(self) -> str:
        """The decision in words built from its task names alone: no verdict error, model output or checked text
        (what :class:`~guardsdk.errors.GuardBlocked` says, and what the service shows a client)."""
        if self.unsafe:
            return f"unsafe: {', '.join(self.unsafe)}"
        if self.allowed and not self.fail_open:
            return "safe"
        what = f"undecided: {', '.join(self.undecided)}" if self.undecided else "undecided (no gated task applies)"
        return f"{what}; failing open by choice" if self.fail_open else f"{what}; failing closed"


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
    categories: tuple[str, ...] = ()  # hazard categories the guard named (Llama Guard's S-codes)
    family: str = ""  # the guard family that read the output
    detector: str = ""  # the detector that decided (family:model, or an ensemble of them)
    scores: dict[str, float] = field(default_factory=dict)  # per task, a probability where the detector gives one
    escalated: bool = False  # a reasoning run decided after a fast first stage (cascade, verdict-first)
    failure: Failure | None = None  # the check could not run to an answer: why (deadline, backend)
    cached: bool = False  # served from a verdict cache (see guardsdk.cache)
    #: Tasks whose reasoning mostly argues against their own label (see :mod:`guardsdk.detectors.reasoning_audit`): an
    #: audit flag, counted and reported, that never changes a label.
    reasoning_conflict: tuple[str, ...] = ()

    @classmethod
    def undecided(
        cls, *, has_response: bool, error: str, raw: str = "", status: ParseStatus = ParseStatus.ERROR, **run: Any
    ) -> Verdict:
        """A verdict with no label for any applicable task (the check could not decide), saying why."""
        blank = verdict_from_labels({}, has_response=has_response, raw=raw, status=status)
        return replace(blank, error=error, **run)

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
        """A JSON-ready dict of every field."""
        data = asdict(self)
        data["parse_status"] = self.parse_status.value
        return data

    def to_json(self, *, withhold: bool = False) -> dict[str, Any]:
        """The verdict as the CLI's ``--json`` and the service show it: answers, evidence, decision, run.

        ``withhold``: leave out the guard's output and reasoning (``raw``, ``reasoning``), and the error text of a
        check that ran to an output (a family's parse error may quote it: the parse status stands in for it;
        ``decision`` is :attr:`Decision.summary`), and say so in ``withheld``: for a client that must not read what
        the guard wrote about a text blocked for it (reasoning guards quote, and even continue, what they judge)."""
        data = {
            "prompt_harmful": self.prompt_harmful,
            "response_refusal": self.response_refusal,
            "response_harmful": self.response_harmful,
            "labels": {task: None if label is None else str(label) for task, label in self.labels.items()},
            "scores": self.scores,
            "reasoning": self.reasoning,
            "raw": self.raw,
            "parse_status": self.parse_status.value,
            "decision": None if self.decision is None else self.decision.reason,
            "allowed": self.allowed,
            "fail_open": self.decision is not None and self.decision.fail_open,
            "model": self.model,
            "family": self.family,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency_s": self.latency_s,
            "truncated": self.truncated,
            "error": self.error,
            "failure": None if self.failure is None else self.failure.value,
            "categories": list(self.categories),
            "windows": self.windows,
            "escalated": self.escalated,
            "cached": self.cached,
            "reasoning_conflict": list(self.reasoning_conflict),
            "withheld": withhold,
        }
        if withhold:
            data.update(raw="", reasoning={}, decision=None if self.decision is None else self.decision.summary)
            # An error about an output the guard wrote may quote it; a typed reason of the guard's own words does
            # not ("unreadable: language de": a language code or script name): it stays, so the caller knows why.
            if self.error and self.raw and not self.error.startswith("unreadable: "):
                data["error"] = f"the guard's output could not decide (parse status {self.parse_status.value})"
        return data


def _as_bool(task: Task, label: Label | str | None) -> bool | None:
    return None if label in (None, NOT_APPLICABLE) else label == task.positive


def verdict_from_labels(
    labels: dict[Task, Label | None],
    *,
    has_response: bool,
    raw: str,
    family: str = "",
    reasoning: dict[str, str] | None = None,
    categories: tuple[str, ...] = (),
    status: ParseStatus | None = None,
    answered: tuple[Task, ...] = TASKS,
) -> Verdict:
    """A verdict from per-task labels: response tasks are not applicable without a response, a task the
    family left out is undecided; ``status`` defaults to ok / partial / failed by how many of the
    ``answered`` tasks (those the family answers) were found."""
    full: dict[str, Label | None] = {}
    for task in TASKS:
        label = labels.get(task)
        full[task] = NOT_APPLICABLE if task is not Task.PROMPT_HARM and not has_response else label and Label(label)
    applicable = [t for t in answered if full[t] is not NOT_APPLICABLE]
    found = [t for t in applicable if full[t] is not None]
    if status is None and found:
        status = ParseStatus.OK if len(found) == len(applicable) else ParseStatus.PARTIAL
    return Verdict(
        prompt_harmful=_as_bool(PROMPT_HARM, full[PROMPT_HARM]),
        response_refusal=_as_bool(REFUSAL, full[REFUSAL]),
        response_harmful=_as_bool(RESPONSE_HARM, full[RESPONSE_HARM]),
        labels=full,
        reasoning=reasoning or {},
        raw=raw,
        parse_status=status or ParseStatus.FAILED,
        has_response=has_response,
        categories=categories,
        family=family,
    )
