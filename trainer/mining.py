"""Hard-sample mining for HS-DPO: inputs whose sampled outputs are both right and wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.verdict import PROMPT_HARM, REFUSAL, RESPONSE_HARM
from guardsdk_trainer.data import Example

WEIGHT_LOW, WEIGHT_HIGH = 0.8, 1.2


@dataclass
class PreferencePair:
    """One mined pair: the input, the longest right and longest wrong sample, and its weight."""

    id: str
    prompt: str  # the exact model input (build_input)
    chosen: str
    rejected: str
    task: str
    raw_weight: int  # wrong - right
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def task_order(example: Example) -> list[str]:
    """Prompt harmfulness first, then response harmfulness, then refusal (the last two need a response)."""
    return [PROMPT_HARM] if example.response is None else [PROMPT_HARM, RESPONSE_HARM, REFUSAL]


def mine_example(example: Example, samples: Sequence[str]) -> PreferencePair | None:
    """The pair for one input: the first task (in :func:`task_order`) whose samples are both right and wrong.

    Samples without a label for that task are left out, as in GuardReasoner's mining.
    """
    has_response = example.response is not None
    parsed = [(text, parse_output(text, has_response=has_response)) for text in samples]
    for task in task_order(example):
        gold = example.labels.get(task)
        if gold is None:
            continue
        labelled = [(text, v.labels[task]) for text, v in parsed if v.labels[task] is not None]
        right = [text for text, label in labelled if label == gold]
        wrong = [text for text, label in labelled if label != gold]
        if right and wrong:
            return PreferencePair(
                id=example.id,
                prompt=example.model_input,
                chosen=max(right, key=len),
                rejected=max(wrong, key=len),
                task=task,
                raw_weight=len(wrong) - len(right),
            )
    return None


def scale_weights(pairs: list[PreferencePair]) -> list[PreferencePair]:
    """Min-max scale ``raw_weight`` (#wrong - #right) to [0.8, 1.2]; all 1.0 when they are equal."""
    if not pairs:
        return pairs
    low, high = min(p.raw_weight for p in pairs), max(p.raw_weight for p in pairs)
    for pair in pairs:
        share = 0.5 if high == low else (pair.raw_weight - low) / (high - low)
        pair.weight = WEIGHT_LOW + share * (WEIGHT_HIGH - WEIGHT_LOW)
    return pairs


def mine(examples: Iterable[Example], samples: dict[str, list[str]]) -> list[PreferencePair]:
    """Mine one model's samples (``samples[example.id]``) and scale their weights."""
    pairs = []
    for example in examples:
        pair = mine_example(example, samples.get(example.id, []))
        if pair is not None:
            pairs.append(pair)
    return scale_weights(pairs)


def merge(mined_sets: Iterable[list[PreferencePair]]) -> list[PreferencePair]:
    """Merge the sets mined from several models, keeping the first pair of each input."""
    merged: dict[str, PreferencePair] = {}
    for pairs in mined_sets:
        for pair in pairs:
            merged.setdefault(pair.id, pair)
    return list(merged.values())
