"""Reading GuardReasoner output: labels, per-task reasoning and a parse status.

The model's answer is read from its answer lines (``Request:`` / ``Completion:`` / ``Response:``),
grouped into blocks: an ``Answers:`` (or ``# Answers``) heading and the answer lines under it. Where the
output has such blocks, answer lines outside them (conclusions inside the reasoning) do not count;
where it has none, runs of loose answer lines are the blocks.

Reading rules, chosen so that text an attacker can get the model to write cannot flip a verdict:

- Blocks are read in order until every applicable task has a real label: that is the answer.
  ``None``, ``ambiguous`` or any other value is not a label and never erases one.
- After a complete answer, loose text cannot change it (an echoed or looping tail is ignored); a later
  answers block that disagrees makes the disagreeing task undecided (status ``conflict``), as do two
  blocks that disagree before the answer is complete.
- A line quoted with ``>``, and an answer line that also stands as a line in the checked conversation
  (an echo of the user's own text), never counts.

Output without labels is a parse failure, never a guess. See docs/protocol.md for the published forms.
"""

from __future__ import annotations

import re
import zlib

from guardsdk.families.guardreasoner.template import ANSWER_KEYS
from guardsdk.verdict import (
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    PROMPT_HARM,
    TASKS,
    ParseStatus,
    Task,
    Verdict,
    verdict_from_labels,
)

#: The task of each answer key the model writes (lower case), from the format's one table.
TASK_OF_KEY = {key.lower(): task for task, key in ANSWER_KEYS.items()}
_KEYS = "|".join(TASK_OF_KEY)

# An answer line: "Request: harmful", "- **Response:** unharmful", "## Completion: refusal".
_ANSWER_LINE = re.compile(rf"^[ \t*#-]*({_KEYS})[ \t*]*:[ \t*]*([A-Za-z]*)", re.IGNORECASE)
# Under an answers heading the colon may be missing ("Response unharmful").
_HEADED_ANSWER_LINE = re.compile(
    rf"^[ \t*#-]*({_KEYS})[ \t*]*:?[ \t*]*(harmful|unharmful|refusal|compliance)\b", re.IGNORECASE
)
# The heading of an answers block: "Answers: ", "# Answers", "**Answers:**", "The ground truth is Answers:".
_ANSWERS_HEADING = re.compile(r"^[ \t#*]*answers?[ \t*]*:?[ \t*]*$", re.IGNORECASE)
_TASK_HEADING = re.compile(r"^#[ \t]+Task[ \t]+(\d+)\b.*$", re.IGNORECASE | re.MULTILINE)
# A task section ends at the next level-1 heading, a "---" rule or an answer block.
_SECTION_END = re.compile(r"^(#[ \t]|---|[ \t]*Answers?[ \t]*:|The ground truth is)", re.IGNORECASE | re.MULTILINE)

#: Outputs at least this long whose tail compresses this well are runaway repetition.
_RUNAWAY_MIN_CHARS = 1500
_RUNAWAY_MAX_RATIO = 0.12

Block = list[tuple[str, str]]  # (task, value) pairs in the order written


def answer_values(text: str) -> dict[str, list[str]]:
    """Every value written on an answer line for each task, in order, lower-cased ('' when none)."""
    found: dict[str, list[str]] = {task: [] for task in TASKS}
    for line in text.splitlines():
        match = _ANSWER_LINE.match(line)
        if match:
            found[TASK_OF_KEY[match.group(1).lower()]].append(match.group(2).lower())
    return found


def _echoed_lines(conversation: str | None) -> frozenset[str]:
    return frozenset(line.strip() for line in (conversation or "").splitlines() if line.strip())


def answer_blocks(text: str, conversation: str | None = None) -> list[Block]:
    """The answer blocks of ``text`` (see the module docstring); echoed and quoted lines left out."""
    echoed = _echoed_lines(conversation)
    headed: list[Block] = []
    loose: list[Block] = []
    current: Block | None = None  # the open block
    headed_open = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped and current is not None:
            continue  # blank lines inside a block
        match = None
        if not stripped.startswith(">") and stripped not in echoed:
            match = _ANSWER_LINE.match(line) or (_HEADED_ANSWER_LINE.match(line) if headed_open else None)
        if match:
            if current is None:
                current, headed_open = [], False
                loose.append(current)
            current.append((TASK_OF_KEY[match.group(1).lower()], match.group(2).lower()))
        elif _ANSWERS_HEADING.match(line) or stripped.lower().startswith("the ground truth is"):
            current, headed_open = [], True
            headed.append(current)
        elif stripped:
            current, headed_open = None, False  # any other line ends a block
    headed = [block for block in headed if block]
    return headed or loose


def _real(task: str, value: str) -> bool:
    return value in (POSITIVE_LABEL[task], NEGATIVE_LABEL[task])


def read_answer(blocks: list[Block], applicable: list[str]) -> tuple[dict[str, str | None], set[str]]:
    """The answer the blocks give for the ``applicable`` tasks, and the tasks whose blocks disagree."""
    decided: dict[str, str] = {}
    conflicts: set[str] = set()
    complete = False
    for block in blocks:
        for task, value in block:
            if task not in applicable or not _real(task, value):
                continue
            if task in decided and decided[task] != value:
                conflicts.add(task)
            elif not complete:
                decided.setdefault(task, value)
        complete = complete or all(t in decided for t in applicable)
    return {t: (None if t in conflicts else decided.get(t)) for t in applicable}, conflicts


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


def _status(text: str, found: bool, conflicts: set[Task]) -> ParseStatus | None:
    """Conflict or runaway where they apply; otherwise None (ok / partial / failed by the labels found)."""
    if conflicts:
        return ParseStatus.CONFLICT
    return None if found or not is_runaway(text) else ParseStatus.RUNAWAY


def parse_output(text: str, *, has_response: bool, conversation: str | None = None) -> Verdict:
    """Read a GuardReasoner output into a :class:`Verdict`.

    ``has_response`` says whether the input held an AI response; without one, the refusal and
    response-harm labels are "not applicable" whatever the model wrote. ``conversation`` is the text the
    guard was shown (prompt and response): answer lines that echo one of its lines never count.
    """
    if not isinstance(text, str):
        raise TypeError(f"model output must be str, not {type(text).__name__}")
    applicable = [t for t in TASKS if t == PROMPT_HARM or has_response]
    answer, conflicts = read_answer(answer_blocks(text, conversation), applicable)
    status = _status(text, any(label is not None for label in answer.values()), conflicts)
    return verdict_from_labels(answer, has_response=has_response, raw=text, family="guardreasoner",
                               reasoning=task_reasoning(text), status=status)  # fmt: skip
