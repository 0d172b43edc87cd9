"""What a guard family is: how its models are prompted and how their answers are read.

A family turns a (prompt, response) pair into one or more model inputs (``render``: one per *view*, e.g.
Llama Guard judges the user turn and the agent turn in separate calls), reads the model's outputs back
into a family-neutral :class:`~guardsdk.verdict.Verdict` (``parse``), and writes the answer block its
models are trained to produce (``answer_block``, for the trainer). Families are registered by name
(:func:`guardsdk.families.register_family`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from guardsdk.verdict import Label, Task, Verdict

#: Text a tokenizer would read as a control token: Llama 3's ``<|...|>``, SentencePiece's ``<s>``/``</s>``.
_CONTROL_LOOKALIKE = re.compile(r"<(?=\|[A-Za-z0-9_]*\|>|/?s>)")
#: Inserted after the ``<`` of a control look-alike: the text reads the same, but tokenizes as text.
WORD_JOINER = "\u2060"


def neutralize_control_tokens(text: str) -> str:
    """``text`` with every control-token look-alike broken up by a word joiner (U+2060).

    A family whose template holds control tokens renders user text through this, so the whole input can
    be tokenized with special-token parsing on (as its model was trained) while a user who writes
    ``<|eot_id|>`` still cannot end their turn early. Servers parse special tokens in a raw prompt too.
    """
    return _CONTROL_LOOKALIKE.sub("<" + WORD_JOINER, text)


@runtime_checkable
class GuardFamily(Protocol):
    """A guard model family: rendering, parsing and answer blocks; see the module docstring."""

    name: str
    #: The tasks its models answer; a task it does not answer is undecided when a policy gates it.
    tasks: tuple[Task, ...]
    #: Its template holds control tokens: inputs are tokenized with special-token parsing on (user text
    #: in them is neutralized by ``render``); else user text can never be a control token anyway.
    special_tokens: bool
    #: Room for a complete answer (reasoning included), in tokens.
    max_new_tokens: int

    def render(self, prompt: str, response: str | None) -> list[str]:
        """The model input of each view, without BOS (backends add it)."""
        ...

    def parse(self, outputs: list[str], *, has_response: bool, conversation: str | None = None) -> Verdict:
        """Read one output per view into a verdict; ``conversation`` is the checked text (echoes never count)."""
        ...

    def answer_block(self, labels: Mapping[Task, Label | None]) -> str:
        """The text a model of this family writes to give ``labels`` (the end of a training target)."""
        ...


@dataclass(frozen=True)
class AnswerSlot:
    """Where a family's model writes one task's label: after ``lead`` (the text before it, e.g.
    ``"\nCompletion:"``), one of ``words`` (e.g. ``{Label.REFUSAL: " refusal", Label.COMPLIANCE: " compliance"}``).

    Forcing the leads and reading which word comes next answers a task in one forward pass (verdict-first);
    the last line of ``lead`` followed by a word is how a written answer is found in an output (its score).
    """

    task: Task
    lead: str
    words: Mapping[Label, str]

    @property
    def key(self) -> str:
        """The text the word follows on its own line of output."""
        return self.lead.rsplit("\n", 1)[-1]


@runtime_checkable
class ForcedAnswers(Protocol):
    """A family whose answers can be forced (verdict-first) and scored: it names its answer slots."""

    def answer_slots(self, has_response: bool) -> list[list[AnswerSlot]]:
        """Per view (as :meth:`GuardFamily.render` orders them), the slots its model fills, in order."""
        ...


@runtime_checkable
class Discoverable(Protocol):
    """A family whose model files ``Guard()`` can find on its own: by name on disk, and in the Hugging Face cache."""

    file_hint: str  # model files and folders of the family have it in their name
    hub_ids: tuple[str, ...]  # its models on the Hugging Face hub (looked up in the local cache only)


@runtime_checkable
class StopsReasoning(Protocol):
    """A family whose reasoning can stop after a task (needed-tasks mode)."""

    def reasoning_stop(self, last_task: Task) -> str | None:
        """Where the reasoning about the tasks after ``last_task`` begins (None: nothing follows it)."""
        ...
