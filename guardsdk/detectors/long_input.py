"""Text longer than the guard's input budget: checked in windows, undecided, or (opt-in) elided.

Rule: text the guard never saw is never judged safe. Under ``LongInput.WINDOWS`` (the default) a long
prompt or response is cut into overlapping token windows and each window is a check of its own; the
merged verdict takes, per task, the positive label if any window gave it, else undecided if any window
was undecided, else the negative label. A long prompt paired with a response gets prompt-only windows
(which judge the prompt) and response windows shown with the prompt's head and tail. More windows than
``Policy.max_windows`` make the check undecided, as does ``LongInput.UNDECIDED`` for any long input.
``LongInput.ELIDE`` keeps the old head-and-tail cut (the middle is never seen); the Guard logs and counts
every check allowed that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from guardsdk.detectors.truncation import ELISION_MARKER, Tokenizes, cut_middle, fit_to_budget, marker_cost
from guardsdk.families.guardreasoner.template import build_input
from guardsdk.policy import LongInput, Policy
from guardsdk.verdict import TASKS, Label, ParseStatus, Task, Verdict, verdict_from_labels

#: No token is longer than this many UTF-8 bytes: a lower bound on the token count without tokenizing.
MAX_BYTES_PER_TOKEN = 256
#: Worst first: the status a merged verdict takes from its windows when a task stays undecided.
_STATUS_ORDER = (ParseStatus.ERROR, ParseStatus.UNFINISHED, ParseStatus.CONFLICT, ParseStatus.RUNAWAY,
                 ParseStatus.FAILED, ParseStatus.PARTIAL)  # fmt: skip


@dataclass(frozen=True)
class Part:
    """One model check: a prompt and an optional response that fit the budget."""

    prompt: str
    response: str | None

    @property
    def text(self) -> str:
        """The checked text: the prompt, then the response on the next line."""
        return self.prompt if self.response is None else f"{self.prompt}\n{self.response}"


@dataclass(frozen=True)
class Plan:
    """How one (prompt, response) is checked: its parts, or why it cannot be (``error``)."""

    prompt: str
    response: str | None
    parts: tuple[Part, ...] = ()
    elided: bool = False  # part of the text is never shown to the guard (LongInput.ELIDE)
    long: bool = False  # the text was over the budget
    error: str | None = None
    views: tuple[tuple[str, ...], ...] = ()  # each part rendered: its model inputs (set by the detector)
    backend_failed: bool = False  # the error is the backend's (a server that could not tokenize), not the input's


def window_ranges(n_tokens: int, size: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` token indices of overlapping windows of at most ``size`` tokens covering every token."""
    overlap = min(size // 8, 128)
    step = size - overlap
    return [(s, min(s + size, n_tokens)) for s in range(0, max(n_tokens - overlap, 1), step)]


def token_windows(tokens: list[Any], size: int, codec: Tokenizes) -> list[str]:
    """Overlapping windows of at most ``size`` tokens covering every token."""
    return [codec.detokenize(tokens[a:b]) for a, b in window_ranges(len(tokens), size)]


def count_windows(n_tokens: int, size: int) -> int:
    """How many windows :func:`token_windows` makes of ``n_tokens`` (the count a check is refused by)."""
    return len(window_ranges(n_tokens, size))


def plan_check(
    prompt: str,
    response: str | None,
    policy: Policy,
    max_input_tokens: int,
    codec: Tokenizes,
    template: Callable[[str, str | None], str] = build_input,
) -> Plan:
    """The parts that check ``prompt`` and ``response`` within ``max_input_tokens`` under ``policy``;
    ``template(prompt, response)`` is the longest model input a part becomes (its overhead is budgeted)."""
    slack = 8  # re-tokenizing a window's cut edges can add a token or two
    pair_budget = max_input_tokens - len(codec.tokenize(template("", "" if response is not None else None))) - slack
    solo_budget = max_input_tokens - len(codec.tokenize(template("", None))) - slack
    if pair_budget < 64:
        raise ValueError(f"max_input_tokens={max_input_tokens} leaves no room for the conversation")
    plan = Plan(prompt, response)
    n_bytes = len(prompt.encode()) + len((response or "").encode())
    if policy.long_input is LongInput.ELIDE:
        fitted = fit_to_budget(
            precut(prompt, pair_budget), precut(response, pair_budget), max_input_tokens, codec, template
        )
        return replace(plan, parts=(Part(fitted.prompt, fitted.response),), elided=fitted.truncated,
                       long=fitted.truncated)  # fmt: skip
    cap = policy.max_windows * pair_budget
    if n_bytes // MAX_BYTES_PER_TOKEN > (pair_budget if policy.long_input is LongInput.UNDECIDED else cap):
        return replace(plan, long=True, error=too_long_reason(policy, f"over {n_bytes // MAX_BYTES_PER_TOKEN}"))
    prompt_tokens = codec.tokenize(prompt)
    response_tokens = codec.tokenize(response) if response is not None else []
    total = len(prompt_tokens) + len(response_tokens)
    if total <= pair_budget:
        return replace(plan, parts=(Part(prompt, response),))
    if policy.long_input is LongInput.UNDECIDED:
        return replace(plan, long=True, error=too_long_reason(policy, str(total)))
    if response is None:
        count = count_windows(len(prompt_tokens), solo_budget)
        if count > policy.max_windows:
            return replace(plan, long=True, error=too_long_reason(policy, str(total), count))
        return replace(
            plan, long=True, parts=tuple(Part(w, None) for w in token_windows(prompt_tokens, solo_budget, codec))
        )
    return _pair_windows(plan, prompt_tokens, response_tokens, pair_budget, solo_budget, policy, codec)


def _pair_windows(plan: Plan, prompt_tokens: list[Any], response_tokens: list[Any], pair_budget: int,
                  solo_budget: int, policy: Policy, codec: Tokenizes) -> Plan:  # fmt: skip
    """Response windows beside the whole prompt, or beside its head and tail plus prompt-only windows."""
    cost = marker_cost(codec)
    if len(prompt_tokens) <= pair_budget // 2:
        shown_prompt, prompt_parts = plan.prompt, []
        response_size = pair_budget - len(prompt_tokens)
    else:
        shown_prompt = cut_middle(plan.prompt, prompt_tokens, pair_budget // 2 - cost, codec)
        prompt_parts = [Part(w, None) for w in token_windows(prompt_tokens, solo_budget, codec)]
        response_size = pair_budget - pair_budget // 2
    count = len(prompt_parts) + count_windows(len(response_tokens), response_size)
    if count > policy.max_windows:
        total = len(prompt_tokens) + len(response_tokens)
        return replace(plan, long=True, error=too_long_reason(policy, str(total), count))
    response_parts = [Part(shown_prompt, w) for w in token_windows(response_tokens, response_size, codec)]
    return replace(plan, long=True, parts=(*prompt_parts, *response_parts))


def too_long_reason(policy: Policy, tokens: str, windows: int | None = None) -> str:
    """Why an input of ``tokens`` tokens (a count, or "over N") is undecided under ``policy``."""
    if policy.long_input is LongInput.UNDECIDED:
        return f"input of {tokens} tokens is over the guard's budget (long_input='undecided')"
    needed = f"{windows} windows" if windows else "more windows"
    return f"input of {tokens} tokens needs {needed}, over max_windows={policy.max_windows}"


def precut(text: str | None, budget: int) -> str | None:
    """Under ELIDE, a huge text is cut by characters first (far beyond ``budget`` tokens) so it is never
    tokenized whole."""
    keep = budget * 16
    if text is None or len(text) <= 2 * keep:
        return text
    return text[:keep] + ELISION_MARKER.format(n="many") + text[-keep:]


def merge_windows(parts: list[Verdict], has_response: bool) -> Verdict:
    """One verdict from the checks of one input's parts (see :func:`merge_verdicts`), each under its window
    heading."""
    return merge_verdicts(parts, has_response, [f"guardsdk window {i}/{len(parts)}" for i in range(1, len(parts) + 1)])


def merge_verdicts(verdicts: list[Verdict], has_response: bool, headings: list[str]) -> Verdict:
    """One verdict from several checks of the same input (its windows, or several detectors): per task, any
    positive wins, then any undecided, else negative (a task's score: the highest, where every check has one);
    each raw output under its heading."""
    if len(verdicts) == 1:
        return verdicts[0]
    labels: dict[Task, Label | None] = {}
    reasoning: dict[str, str] = {}
    scores: dict[str, float] = {}
    for task in TASKS:
        seen = [v for v in verdicts if v.labels[task] is not Label.NOT_APPLICABLE]
        if seen and all(task in v.scores for v in seen):  # any positive wins: the highest score of all
            scores[task] = max(v.scores[task] for v in seen)
        positive = [v for v in seen if v.labels[task] == task.positive]
        undecided = any(v.labels[task] is None for v in seen)
        labels[task] = task.positive if positive else None if undecided or not seen else seen[0].labels[task]
        source = (positive or seen or verdicts)[0]
        if task in source.reasoning:
            reasoning[task] = source.reasoning[task]
    statuses = {v.parse_status for v in verdicts}
    status = next((s for s in _STATUS_ORDER if s in statuses), ParseStatus.OK)  # the worst window's
    merged = verdict_from_labels(labels, has_response=has_response, raw="", reasoning=reasoning, status=status)
    return replace(
        merged,
        raw="\n\n".join(f"[{heading}]\n{v.raw}" for heading, v in zip(headings, verdicts, strict=True)),
        model=verdicts[0].model,
        tokens_in=sum(v.tokens_in for v in verdicts),
        tokens_out=sum(v.tokens_out for v in verdicts),
        latency_s=sum(v.latency_s for v in verdicts),
        output_truncated=any(v.output_truncated for v in verdicts),
        input_truncated=any(v.input_truncated for v in verdicts),
        long_input=any(v.long_input for v in verdicts),
        error="; ".join(dict.fromkeys(v.error for v in verdicts if v.error)) or None,
        failure=next((v.failure for v in verdicts if v.failure is not None), None),
        categories=tuple(dict.fromkeys(c for v in verdicts for c in v.categories)),
        windows=sum(v.windows for v in verdicts),
        scores=scores,
        reasoning_conflict=tuple(t for t in TASKS if any(t in v.reasoning_conflict for v in verdicts)),
        family=",".join(v.family for v in verdicts),
    )
