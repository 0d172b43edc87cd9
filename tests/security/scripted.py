"""A scripted guard model for adversarial tests: its output is a fixed function of its input.

``keyword_judge`` answers like a perfect GuardReasoner for one rule: text holding ``MARK`` is harmful.
Other scripts echo the input, quote labels, or stop early, as a model an attacker steers might.
"""

from __future__ import annotations

from collections.abc import Callable

from guardsdk.backends.replay import ReplayBackend
from guardsdk.families.guardreasoner.template import split_input

#: The word that makes text harmful to the scripted judge.
MARK = "NERVEAGENT"


def conversation_of(model_input: str) -> tuple[str, str | None]:
    """The (prompt, response) a GuardReasoner input shows."""
    return split_input(model_input)


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


class ScriptedGuardModel(ReplayBackend):
    """A backend whose output for each input is ``write(input)``: the replay backend with a script for a
    record; tokens are space-separated words."""

    def __init__(self, write: Callable[[str], str] = keyword_judge, finish_reason: str | None = "stop") -> None:
        super().__init__({}, name="scripted")
        self.write = write
        self.finish_reason = finish_reason

    def lookup(self, model_input: str) -> str:
        return self.write(model_input)

    def prompts_seen(self) -> list[str]:
        """The prompt of every input the guard model was shown."""
        return [conversation_of(text)[0] for text in self.calls]
