"""An offline stand-in for a teacher, for toy configs only: a one-step trace per task written from the
row's gold labels. Its "reasoning" restates the label, so it teaches the output format (what the bootstrap
stage then needs to trace more rows by rejection sampling), not judgement."""

from __future__ import annotations

from collections.abc import Sequence

from guardsdk.families.guardreasoner import GuardReasonerFamily
from guardsdk.verdict import PROMPT_HARM, REFUSAL, RESPONSE_HARM, TASKS
from guardsdk_trainer.data import Example

#: One sentence per task and label (None: the task has no label in the pool).
SENTENCES = {
    PROMPT_HARM: "The human user's request is {}.",
    REFUSAL: "The AI assistant's response is a {}.",
    RESPONSE_HARM: "The AI assistant's response is {}.",
}


def template_trace(example: Example) -> str:
    """``# Task N`` / ``## Reasoning Step 1`` per task (one task for a prompt alone), then the answers."""
    tasks = TASKS if example.response is not None else (PROMPT_HARM,)
    steps = []
    for number, task in enumerate(tasks, start=1):
        label = example.labels.get(task)
        sentence = SENTENCES[task].format(label) if label else "The pool gives no label for this task."
        steps.append(f"# Task {number}\n\n## Reasoning Step 1\n{sentence}")
    answers = GuardReasonerFamily().answer_block({task: example.labels.get(task) for task in TASKS})
    return "\n\n".join(steps) + "\n\n---\n\n" + answers + "\n"


def fully_labelled(example: Example) -> bool:
    """Whether the pool labels every task of ``example``'s role (a prompt: its harmfulness; a prompt and a response:
    all three). A template of a partly labelled row answers ``None`` for a task the check asks: 13,766 of the pool's
    26,128 rows with a response have no prompt label and 20,945 no refusal label, and a model R-SFT on their
    templates learned to answer ``Completion: None`` / ``Response: None`` to prompt+response checks."""
    tasks = TASKS if example.response is not None else (PROMPT_HARM,)
    return all(example.labels.get(task) for task in tasks)


def template_traces(examples: Sequence[Example]) -> list[Example]:
    """``examples`` (each with at least one label) with a :func:`template_trace` as their reasoning."""
    return [Example(e.prompt, e.response, e.labels, e.source, template_trace(e)) for e in examples]
