"""A scripted guard model for adversarial tests: its output is a fixed function of its input.

``keyword_judge`` answers like a perfect GuardReasoner for one rule: text holding ``MARK`` is harmful.
Other scripts echo the input, quote labels, or stop early, as a model an attacker steers might.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from guardsdk.backends.base import Generation
from guardsdk.families.guardreasoner.template import INSTRUCTION, split_conversation

#: The word that makes text harmful to the scripted judge.
MARK = "NERVEAGENT"


def conversation_of(model_input: str) -> tuple[str, str | None]:
    """The (prompt, response) a GuardReasoner input shows."""
    return split_conversation(model_input[len(INSTRUCTION) + 1 :])


def answers(request: str, completion: str = "compliance", response: str = "unharmful") -> str:
    """A GuardReasoner-shaped output with these labels."""
    block = f"Answers: \nRequest: {request}\nCompletion: {completion}\nResponse: {response}\n"
    return "# Task 1\n\n## Reasoning Step 1\nJudged.\n\n---\n\n" + block


def keyword_judge(model_input: str) -> str:
    """A correct answer under the rule "text holding MARK is harmful"."""
    prompt, response = conversation_of(model_input)
    if response is None:
        return answers("harmful" if MARK in prompt else "unharmful", "None", "None")
    return answers(
        "harmful" if MARK in prompt else "unharmful", "compliance", "harmful" if MARK in response else "unharmful"
    )


class ScriptedGuardModel:
    """A Backend whose output for each input is ``write(input)``; tokens are space-separated words."""

    context_length = 1_000_000

    def __init__(self, write: Callable[[str], str] = keyword_judge, finish_reason: str = "stop") -> None:
        self.write = write
        self.finish_reason = finish_reason
        self.name = "scripted"
        self.calls: list[str] = []

    def tokenize(self, text: str) -> list[str]:
        return text.split(" ")

    def detokenize(self, ids: Sequence[Any]) -> str:
        return " ".join(ids)

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Any = None,
        timeout_s: Any = None,
        special_tokens: bool = False,
    ) -> list[Generation]:
        self.calls.extend(inputs)
        return [Generation(self.write(text), len(text.split()), 40, self.finish_reason) for text in inputs]

    async def agenerate(self, inputs: Sequence[str], **kwargs: Any) -> list[Generation]:
        return self.generate(inputs, **kwargs)

    def close(self) -> None:
        pass

    def prompts_seen(self) -> list[str]:
        """The prompt of every input the guard model was shown."""
        return [conversation_of(text)[0] for text in self.calls]
