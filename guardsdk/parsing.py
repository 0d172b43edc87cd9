"""Reading GuardReasoner output: labels, per-task reasoning and a parse status.

The parser reads every ``Request:`` / ``Completion:`` / ``Response:`` line of the output (the final
"Answers:" block, per-task blocks, "# Answers" headings and leaked "The ground truth is" blocks
alike). For each task the last real label wins; ``None``, ``ambiguous`` or any other value never
erases a real label written earlier. Output without labels is a parse failure, never a guess.
See docs/protocol.md for every form found in the published predictions.
"""

from __future__ import annotations

import re
import zlib

from guardsdk.verdict import (
    NEGATIVE_LABEL,
    NOT_APPLICABLE,
    POSITIVE_LABEL,
    PROMPT_HARM,
    REFUSAL,
    RESPONSE_HARM,
    TASKS,
    ParseStatus,
    Verdict,
)

#: The answer key the model writes for each task.
ANSWER_KEYS = {"request": PROMPT_HARM, "completion": REFUSAL, "response": RESPONSE_HARM}

_ANSWER_LINE = re.compile(
    r"^[ \t>*#-]*(request|completion|response)[ \t*]*:[ \t*]*([A-Za-z]*)", re.IGNORECASE | re.MULTILINE
)
_TASK_HEADING = re.compile(r"^#[ \t]+Task[ \t]+(\d+)\b.*$", re.IGNORECASE | re.MULTILINE)
# A task section ends at the next level-1 heading, a "---" rule or an answer block.
_SECTION_END = re.compile(r"^(#[ \t]|---|[ \t]*Answers?[ \t]*:|The ground truth is)", re.IGNORECASE | re.MULTILINE)

#: Outputs at least this long whose tail compresses this well are runaway repetition.
_RUNAWAY_MIN_CHARS = 1500
_RUNAWAY_MAX_RATIO = 0.12


def answer_values(text: str) -> dict[str, list[str]]:
    """Every value written after each answer key, in order, lower-cased ('' when none)."""
    found: dict[str, list[str]] = {task: [] for task in TASKS}
    for key, value in _ANSWER_LINE.findall(text):
        found[ANSWER_KEYS[key.lower()]].append(value.lower())
    return found


def last_real_label(task: str, values: list[str]) -> str | None:
    """The last value that is a label of ``task``; None, ambiguous or junk values are skipped."""
    valid = (POSITIVE_LABEL[task], NEGATIVE_LABEL[task])
    for value in reversed(values):
        if value in valid:
            return value
    return None


def task_reasoning(text: str) -> dict[str, str]:
    """The text of each '# Task N' section (N = 1, 2, 3), keyed by task."""
    sections: dict[str, str] = {}
    for match in _TASK_HEADING.finditer(text):
        number = int(match.group(1))
        if not 1 <= number <= len(TASKS) or TASKS[number - 1] in sections:
            continue
        body_start = match.end()
        end = _SECTION_END.search(text, body_start)
        body = text[body_start : end.start() if end else len(text)]
        sections[TASKS[number - 1]] = body.strip()
    return sections


def is_runaway(text: str) -> bool:
    """True when the output degenerated: a repetitive tail, or task headings counting past 3."""
    if any(int(n) > len(TASKS) for n in _TASK_HEADING.findall(text)):
        return True
    if len(text) < _RUNAWAY_MIN_CHARS:
        return False
    tail = text[-_RUNAWAY_MIN_CHARS:].encode("utf-8", "replace")
    return len(zlib.compress(tail)) / len(tail) < _RUNAWAY_MAX_RATIO


def _as_bool(task: str, label: str | None) -> bool | None:
    if label is None or label == NOT_APPLICABLE:
        return None
    return label == POSITIVE_LABEL[task]


def parse_output(text: str, *, has_response: bool) -> Verdict:
    """Read a GuardReasoner output into a :class:`Verdict`.

    ``has_response`` says whether the input held an AI response; without one, the refusal and
    response-harm labels are "not applicable" whatever the model wrote.
    """
    if not isinstance(text, str):
        raise TypeError(f"model output must be str, not {type(text).__name__}")
    values = answer_values(text)
    labels: dict[str, str | None] = {}
    for task in TASKS:
        if task != PROMPT_HARM and not has_response:
            labels[task] = NOT_APPLICABLE
        else:
            labels[task] = last_real_label(task, values[task])
    applicable = [t for t in TASKS if labels[t] != NOT_APPLICABLE]
    found = [t for t in applicable if labels[t] is not None]
    if len(found) == len(applicable):
        status = ParseStatus.OK
    elif found:
        status = ParseStatus.PARTIAL
    else:
        status = ParseStatus.RUNAWAY if is_runaway(text) else ParseStatus.FAILED
    return Verdict(
        prompt_harmful=_as_bool(PROMPT_HARM, labels[PROMPT_HARM]),
        response_refusal=_as_bool(REFUSAL, labels[REFUSAL]),
        response_harmful=_as_bool(RESPONSE_HARM, labels[RESPONSE_HARM]),
        labels=labels,
        reasoning=task_reasoning(text),
        raw=text,
        parse_status=status,
        has_response=has_response,
    )
