"""Scores behind answers: forcing a family's answer slots and reading their probabilities (verdict-first,
needed-tasks), and the probability behind a label the model wrote (every reasoning run).

A score is the probability of the task's positive label (harmful, refusal), like the classifier's: read from
the two label words' next-token probabilities, normalized over the two: where the slot is forced, and where the
model wrote the word itself (the backend watched both words' probabilities while generating).
"""

from __future__ import annotations

import math
import re
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
class ForcedReading:
    """What forcing a view's slots gave: a label and score per task, the text forced, and why any stopped."""

    labels: dict[Task, Label | None] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    text: str = ""
    error: str | None = None


def force_slots(
    scorer: NextTokenScorer, context: str, slots: Sequence[AnswerSlot], *, special_tokens: bool,
    min_label_mass: float = MIN_LABEL_MASS,
) -> ForcedReading:  # fmt: skip
    """Write each slot's lead after ``context`` and take the likelier label word, slot by slot (each word then
    stands in the context of the next). A slot whose words hold under ``min_label_mass`` stops the reading:
    it and the slots after it stay undecided."""
    forced = ForcedReading()
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


def slot_word_ids(slot: AnswerSlot, codec: Any) -> tuple[int, int] | None:
    """The first token ids of the slot's positive and negative words after its key, or None where the backend
    cannot place them (``codec`` tokenizes as the model does)."""
    task = slot.task
    try:
        _, firsts = continuation_tokens(
            codec.tokenize, slot.key, [slot.words[task.positive], slot.words[task.negative]]
        )
    except Exception:  # a word this backend cannot place: no score, never a guess
        return None
    return firsts[0], firsts[1]


def written_score(
    slot: AnswerSlot, label: Label, generation: Generation, word_ids: tuple[int, int] | None, codec: Any
) -> float | None:
    """The score behind ``label`` as the model wrote it: at the last step that wrote the label's word right
    after the slot's key, the probability of the positive word over both words (``word_ids``, from
    :func:`slot_word_ids`; both were watched, see :class:`~guardsdk.backends.base.NextTokenScorer`); None where
    the output or the backend does not show it. ``codec`` detokenizes as the model does."""
    ids, watched = generation.token_ids, generation.watched
    if ids is None or not watched or word_ids is None:
        return None
    chosen = word_ids[0] if label == slot.task.positive else word_ids[1]
    for step in sorted(watched, reverse=True):
        if step < len(ids) and ids[step] == chosen and codec.detokenize(ids[:step]).endswith(slot.key):
            unwritten = word_ids[1] if chosen == word_ids[0] else word_ids[0]
            written, other = (watched[step].get(i, -math.inf) for i in (chosen, unwritten))
            # the numbers must fit what was written (greedy): the written word in its top, finite, at least as
            # likely as the other word (outside the top: -inf); else no score, so no threshold can overturn the label
            if not (math.isfinite(written) and written <= 0 and (other == -math.inf or math.isfinite(other))
                    and written >= other):  # fmt: skip
                return None
            positive, negative = (math.exp(watched[step].get(i, -math.inf)) for i in word_ids)
            return positive / (positive + negative) if positive + negative > 0 else None
    return None


def echo_refusal(checked: str, slots: Sequence[AnswerSlot]) -> str | None:
    """Why no answer may be forced after ``checked``: it writes answer lines itself (a slot's key and one of its
    words, e.g. ``Request: unharmful``), which a forced reading could copy, as the parser never counts an echo.
    None when it writes none."""
    text = re.sub(r"[\s*#>_-]+", " ", checked.lower()).replace(" :", ":")  # markdown and spacing hide nothing
    found = []
    for slot in slots:
        key = slot.key.strip().lower()
        for word in slot.words.values():
            line = f"{key} {word.strip().lower()}"
            if key and (line in text or line.replace(": ", ":") in text):
                found.append(f"{slot.key.strip()} {word.strip()}")
    if not found:
        return None
    return f"the checked text writes answer lines itself ({', '.join(found)}): no forced answer is read"


__all__ = ["MIN_LABEL_MASS", "ForcedReading", "echo_refusal", "force_slots", "slot_word_ids", "written_score"]
