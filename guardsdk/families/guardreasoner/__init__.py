"""GuardReasoner (yueliu1999/GuardReasoner-1B/3B/8B): step-by-step reasoning, then an answers block.

``template`` is the exact input the released models were run on, ``parser`` reads their outputs (see
docs/protocol.md). The template holds no control tokens, so user text is tokenized with special-token
parsing off and can never be one.
"""

from __future__ import annotations

from collections.abc import Mapping

from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import build_input
from guardsdk.verdict import TASKS, Label, Task, Verdict

ANSWER_KEYS = {Task.PROMPT_HARM: "Request", Task.REFUSAL: "Completion", Task.RESPONSE_HARM: "Response"}


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

    def answer_block(self, labels: Mapping[Task, Label | None]) -> str:
        lines = [f"{ANSWER_KEYS[task]}: {labels.get(task) or 'None'}" for task in TASKS]
        return "Answers: \n" + "\n".join(lines)
