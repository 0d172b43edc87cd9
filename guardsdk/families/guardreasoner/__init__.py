"""GuardReasoner (yueliu1999/GuardReasoner-1B/3B/8B): step-by-step reasoning, then an answers block.

``template`` is the exact input the released models were run on, ``parser`` reads their outputs (see
docs/protocol.md). The template holds no control tokens, so user text is tokenized with special-token
parsing off and can never be one.
"""

from __future__ import annotations

from collections.abc import Mapping

from guardsdk.families.base import AnswerSlot
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import ANSWER_KEYS, build_input
from guardsdk.verdict import TASKS, Label, Task, Verdict

#: What the released models write between their reasoning and the first answer line.
ANSWERS_HEADING = "---\n\nAnswers: \n"
SLOTS = tuple(
    AnswerSlot(task, (ANSWERS_HEADING if task is Task.PROMPT_HARM else "\n") + f"{ANSWER_KEYS[task]}:",
               {task.positive: f" {task.positive.value}", task.negative: f" {task.negative.value}"})
    for task in TASKS
)  # fmt: skip


class GuardReasonerFamily:
    """See the module docstring."""

    name = "guardreasoner"
    tasks = TASKS
    special_tokens = False
    max_new_tokens = 1024
    file_hint = "guardreasoner"  # model files and folders of this family have it in their name
    hub_ids = ("yueliu1999/GuardReasoner-1B", "yueliu1999/GuardReasoner-3B", "yueliu1999/GuardReasoner-8B")

    def render(self, prompt: str, response: str | None) -> list[str]:
        return [build_input(prompt, response)]

    def parse(self, outputs: list[str], *, has_response: bool, conversation: str | None = None) -> Verdict:
        [text] = outputs
        return parse_output(text, has_response=has_response, conversation=conversation)

    def answer_slots(self, has_response: bool) -> list[list[AnswerSlot]]:
        return [list(SLOTS if has_response else SLOTS[:1])]

    def reasoning_stop(self, last_task: Task) -> str | None:
        """Where the reasoning about tasks after ``last_task`` begins (None: nothing follows it)."""
        number = TASKS.index(last_task) + 1
        return f"# Task {number + 1}" if number < len(TASKS) else None

    def answer_block(self, labels: Mapping[Task, Label | None]) -> str:
        lines = [f"{ANSWER_KEYS[task]}: {labels.get(task) or 'None'}" for task in TASKS]
        return "Answers: \n" + "\n".join(lines)
