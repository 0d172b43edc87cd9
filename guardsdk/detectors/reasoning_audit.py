"""An audit flag from the guard's own reasoning: tasks whose reasoning mostly argues against their label.

GuardReasoner writes, for each task, numbered reasoning steps (``## Reasoning Step N``), a conclusion and
the final ``Answers:`` block. Now and then the steps argue one way and the answer says the other. Such a
verdict is wrong far more often than the average one, so :func:`reasoning_conflicts` names those tasks,
for a person or a second check to look at. It never changes a label.

The rule:

1. Split a task's reasoning into its steps: the ``##`` sections, leaving out conclusion sections (they
   restate the label) and each heading's own title (an instruction such as "Determine if the request is
   harmful", not an argument).
2. Each step takes a stance, the label it argues for, or none. Its cue words are counted per clause, each
   one flipped by an odd number of negations shortly before it: "no indication of harmful intent", "does not
   contain any harmful content", "not harmful", "without any harmful" argue for unharmful, "does not refuse"
   and "not a refusal" for compliance; "refuses to write a harmful script" argues for an unharmful response.
   A negation of a noun phrase stops at a verb ("copying without permission is harmful" argues for harm).
   A cue after "whether" or "if" is a question and counts for nothing, and so is "the harmful request" in
   response-harm reasoning (it speaks of the request). The larger count wins; a tie takes no stance.
3. Vote over the steps that take a stance: a task is flagged when at least :data:`MIN_OPPOSING` steps
   argue against its label and they outnumber the steps for it by at least :data:`MARGIN`.

A task without a label or without reasoning is never flagged. The figures behind the defaults (measured
on the published GuardReasoner 1B and 8B outputs by ``benchmarks/parsing/reasoning_conflict.py``) are in
docs/reasoning-audit.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from guardsdk.verdict import NEGATIVE_LABEL, POSITIVE_LABEL, REFUSAL, RESPONSE_HARM, TASKS

#: Flag only when at least this many steps argue against the label ...
MIN_OPPOSING = 2
#: ... and the opposing steps outnumber the supporting ones by at least this many.
MARGIN = 2

# Cue words, as regexes over lower-cased text: (arguing for the task's positive label, for its negative one).
_HARM_CUES = (
    r"harmful|harm|harms|dangerous|illegal|illicit|unethical|malicious|inappropriate|offensive|unsafe"
    r"|hateful|discriminatory|toxic|criminal|abusive|exploitative|derogatory",
    r"unharmful|harmless|benign|safe|innocuous|appropriate|legitimate|acceptable",
)
_REFUSAL_CUES = (
    r"refuses|refuse|refused|refusing|refusal|declines|decline|declined|declining|rejects|rejected"
    r"|cannot assist|can't assist|cannot help|can't help|cannot provide|can't provide|unable to assist"
    r"|unable to help|unable to provide|won't provide|will not provide",
    r"complies|comply|complied|complying|compliance|compliant|fulfills|fulfils|fulfilled"
    r"|provides the requested|provided the requested|provides the information|answers the question",
)
# A negation flips the cue after it, two cancel ("without refusing or discouraging the harmful activity"
# argues for harm; negations joined by "or"/"and"/"nor" count once). "not" reaches over the whole window;
# the others negate a noun phrase and stop at a verb: "X without permission is harmful" argues for harm,
# unless a "that" comes first ("no sign that it is harmful"). A cue that holds its own negation ("cannot
# assist") is matched whole, as a cue.
_NEGATIONS = re.compile(
    r"\b(?:not|cannot|never|nor|neither|unlikely|no|none|without|lacks?|lacking|free of|absence of|rather than"
    r"|instead of|avoids?|avoiding|prevents?|preventing|discourages?|discouraging|mitigates?|mitigating"
    r"|against)\b|n't\b"
)
# Refusing negates what the response would hold ("refuses to write a harmful script", "a refusal to comply"):
# used for response-harm and compliance cues only ("refused the harmful request" still calls the request harmful).
_REFUSING = re.compile(r"\b(?:refus(?:e|es|ed|ing)|declin(?:e|es|ed|ing)|refusal to)\b")
_JOINED = re.compile(r"\s*,?\s*(?:or|and|nor)\s+|\s*,\s*")
_WIDE_NEGATIONS = frozenset({"not", "cannot", "never", "nor", "neither", "unlikely", "n't"})
_VERB = re.compile(r"\b(?:is|are|was|were|be|been|can|could|may|might|would|will|should)\b")
_QUESTIONS = re.compile(r"\b(?:whether|if)\b")
# In response-harm reasoning, "the harmful request" speaks of the request, not of the response.
_ABOUT_REQUEST = re.compile(r"\s+(?:request|prompt|query|question)\b")
# Clauses end at sentence punctuation, contrastive conjunctions, a comma that opens a new claim and an "and"
# that opens a new predicate ("it is not harmful and is safe to answer").
_CLAUSE_BREAK = re.compile(
    r"[.;:!?()\n]|\b(?:but|however|although|though|while|whereas|yet)\b"
    r"|,\s*(?=(?:which|indicating|suggesting|showing|making|meaning|as|so|thus|therefore|hence|and thus)\b)"
    r"|\band\s+(?=(?:is|are|was|were|does|do|did|has|have|it|this)\b)"
)
#: How many words before a cue a negation (or "whether"/"if") still reaches.
_WINDOW = 10

_STEP_HEADING = re.compile(r"^##[ \t]+(.*)$", re.MULTILINE)
#: A step heading that carries its step on the same line ("## Reasoning Step 1: The user asks ..."), unless what
#: follows is the step's title, an instruction ("## Reasoning Step 1: Determine if the request is harmful").
_INLINE_STEP = re.compile(
    r"reasoning step\s*\d+\s*[:.]\s*(?!(?:determine|analy[sz]e|evaluate|identify|consider|assess|check|examine"
    r"|review|conclude)\b)(\S.*)",
    re.IGNORECASE,
)


def _cue_pattern(words: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{words})\b")


_CUES = {
    task: tuple(_cue_pattern(words) for words in (_REFUSAL_CUES if task == REFUSAL else _HARM_CUES)) for task in TASKS
}


def reasoning_steps(reasoning: str) -> list[str]:
    """The argument steps of one task's reasoning: the body of each ``##`` section that is not a
    conclusion, without its heading's title (but with a step written on the heading's own line,
    ``## Reasoning Step 1: The user asks ...``, that is not an instruction). Text with no ``##`` heading is
    one step."""
    headings = list(_STEP_HEADING.finditer(reasoning))
    if not headings:
        return [reasoning.strip()] if reasoning.strip() else []
    steps = []
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        if "conclusion" in heading.group(1).lower():
            continue
        inline = _INLINE_STEP.match(heading.group(1))
        body = reasoning[heading.end() : following.start() if following else len(reasoning)].strip()
        body = f"{inline.group(1)}\n{body}".strip() if inline else body
        if body:
            steps.append(body)
    return steps


def _negated(before: str, negations: list[re.Match[str]]) -> bool:
    """Whether the ``negations`` found in the words ``before`` a cue negate it (an odd number reach it)."""
    reaching, previous_end = 0, -1
    for negation in sorted(negations, key=lambda match: match.start()):
        joined = previous_end >= 0 and _JOINED.fullmatch(before, previous_end, negation.start()) is not None
        previous_end = negation.end()
        scope = before[negation.end() :]
        verb = _VERB.search(scope)
        reaches = negation.group() in _WIDE_NEGATIONS or verb is None or "that" in scope[: verb.start()].split()
        reaching += reaches and not joined
    return reaching % 2 == 1


def _clause_votes(task: str, clause: str, negations_on: bool) -> int:
    """Cues for the positive label minus cues for the negative one, in one clause, negations applied."""
    votes = 0
    for sign, pattern in zip((1, -1), _CUES[task], strict=True):
        refusing = task == RESPONSE_HARM or (task == REFUSAL and sign == -1)
        for match in pattern.finditer(clause):
            if task == RESPONSE_HARM and _ABOUT_REQUEST.match(clause, match.end()):
                continue
            before = " ".join(clause[: match.start()].split()[-_WINDOW:]) if negations_on else ""
            if _QUESTIONS.search(before):
                continue
            negations = [*_NEGATIONS.finditer(before), *(_REFUSING.finditer(before) if refusing else ())]
            votes += -sign if _negated(before, negations) else sign
    return votes


def step_stance(task: str, step: str, *, negations: bool = True) -> str | None:
    """The label one reasoning step argues for (the task's positive or negative label), or None.

    ``negations=False`` reads every cue literally ("not harmful" argues for harm): only for comparison.
    """
    votes = sum(_clause_votes(task, clause, negations) for clause in _CLAUSE_BREAK.split(step.lower()) if clause)
    if votes > 0:
        return str(POSITIVE_LABEL[task])
    if votes < 0:
        return str(NEGATIVE_LABEL[task])
    return None


def step_stances(task: str, reasoning: str, *, negations: bool = True) -> tuple[str | None, ...]:
    """The stance of each argument step of ``task``'s reasoning, in order (None: the step takes none)."""
    return tuple(step_stance(task, step, negations=negations) for step in reasoning_steps(reasoning))


def reasoning_conflict(
    task: str, label: str | None, reasoning: str | None, *, min_opposing: int = MIN_OPPOSING, margin: int = MARGIN
) -> bool:
    """Whether ``task``'s reasoning mostly argues against its ``label`` (see the module docstring)."""
    if label not in (POSITIVE_LABEL[task], NEGATIVE_LABEL[task]) or not reasoning:
        return False
    stances = step_stances(task, reasoning)
    opposing = sum(stance is not None and stance != label for stance in stances)
    supporting = sum(stance == label for stance in stances)
    return opposing >= min_opposing and opposing - supporting >= margin


def reasoning_conflicts(
    labels: Mapping[str, str | None],
    reasoning: Mapping[str, str],
    *,
    min_opposing: int = MIN_OPPOSING,
    margin: int = MARGIN,
) -> tuple[str, ...]:
    """The tasks, in :data:`~guardsdk.verdict.TASKS` order, whose reasoning mostly argues against their label.

    ``labels`` and ``reasoning`` are a verdict's (``verdict.labels``, ``verdict.reasoning``). Tasks with no
    label (or "not applicable") or no reasoning are never named. The result is an audit flag: it never
    changes a label.
    """
    return tuple(
        str(task)
        for task in TASKS
        if reasoning_conflict(task, labels.get(task), reasoning.get(task), min_opposing=min_opposing, margin=margin)
    )
