"""Scores behind answers: forcing a family's answer slots and reading their probabilities (verdict-first,
needed-tasks), and the probability behind a label the model wrote (every reasoning run).

A score is the probability of the task's positive label (harmful, refusal), like the classifier's: read from
the two label words' next-token probabilities where the slot is forced (normalized over the two), and from the
chosen token's probability where the model wrote the word itself (``p`` for a positive word, ``1 - p`` for a
negative one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from guardsdk.backends.base import Generation, NextTokenScorer, continuation_tokens
from guardsdk.families.base import AnswerSlot
from guardsdk.verdict import Label, Task

#: Forced slots whose two label words hold less next-token probability than this are undecided: the model
#: did not mean to write a label there.
MIN_LABEL_MASS = 0.5


@dataclass
class ForcedAnswers:
    """What forcing a view's slots gave: a label and score per task, the text forced, and why any stopped."""

    labels: dict[Task, Label | None] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    text: str = ""
    error: str | None = None


def force_slots(
    scorer: NextTokenScorer, context: str, slots: Sequence[AnswerSlot], *, special_tokens: bool,
    min_label_mass: float = MIN_LABEL_MASS,
) -> ForcedAnswers:  # fmt: skip
    """Write each slot's lead after ``context`` and take the likelier label word, slot by slot (each word then
    stands in the context of the next). A slot whose words hold under ``min_label_mass`` stops the reading:
    it and the slots after it stay undecided."""
    forced = ForcedAnswers()
    for slot in slots:
        task = slot.task
        context += slot.lead
        forced.text += slot.lead
        words = (slot.words[task.positive], slot.words[task.negative])
        positive, negative = scorer.next_token_probs([context], words, special_tokens=special_tokens)[0]
        mass = positive + negative
        if not mass >= min_label_mass:  # NaN included
            forced.error = f"the model gave the {task.value} label words {mass:.2f} of its probability, not a label"
            break
        forced.scores[task] = positive / mass
        label = task.positive if forced.scores[task] >= 0.5 else task.negative
        forced.labels[task] = label
        context += slot.words[label]
        forced.text += slot.words[label]
    return forced


def written_score(slot: AnswerSlot, label: Label, generation: Generation, codec: Any) -> float | None:
    """The score behind ``label`` as the model wrote it in ``generation``: from the probability of the last
    token that starts the label's word right after the slot's key; None where the output does not show it or
    the backend gave no token log-probabilities. ``codec`` tokenizes and detokenizes as the model does."""
    ids, logprobs = generation.token_ids, generation.token_logprobs
    if ids is None or logprobs is None or len(logprobs) != len(ids):
        return None
    try:
        _, [first] = continuation_tokens(codec.tokenize, slot.key, [slot.words[label]])
    except Exception:  # a word this backend cannot place: no score, never a guess
        return None
    for index in reversed(range(len(ids))):
        if ids[index] == first and codec.detokenize(ids[:index]).endswith(slot.key):
            chosen = math.exp(logprobs[index])
            return chosen if label == slot.task.positive else 1.0 - chosen
    return None


__all__ = ["MIN_LABEL_MASS", "ForcedAnswers", "force_slots", "written_score"]
