"""The cascade's operating curve, computed exactly offline.

For every item of a benchmark we know the classifier's score and what the reasoning guard answered (its
published outputs, replayed). A band ``(low, high)`` then fixes, item by item, who decides (the classifier
when its score is at or below ``low`` or at or above ``high``, else the reasoning guard) and so the cascade's
label — no model runs. A label that is undecided counts as wrong (the paper's evaluation counts an
unreadable output wrong; a fail-closed guard blocks it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from guardsdk.eval.scoring import binary_scores
from guardsdk.verdict import Task


@dataclass(frozen=True)
class CascadeItem:
    """One benchmark item: its gold label, the classifier's score, and the reasoning guard's label and cost."""

    benchmark: str
    task: str
    gold: str
    score: float  # the classifier's probability of the task's positive label (nan: undecided)
    reasoning: str | None  # the reasoning guard's label (None: undecided)
    reasoning_s: float = 0.0  # what the reasoning check of this item costs, in seconds


def cascade_label(item: CascadeItem, low: float, high: float, threshold: float = 0.5) -> tuple[str | None, bool]:
    """The cascade's label for ``item`` under the band (which holds the classifier's ``threshold``), and
    whether the reasoning guard decided it — the rule of :meth:`guardsdk.detectors.cascade.Cascade.escalates`."""
    task = Task(item.task)
    if math.isfinite(item.score) and (item.score <= low or item.score >= high):
        return (task.positive if item.score >= threshold else task.negative).value, False
    return item.reasoning, True


def _scored(gold: str, label: str | None, task: Task) -> str:
    if label is None:  # undecided: counted wrong
        return task.negative.value if gold == task.positive else task.positive.value
    return label


def curve_point(items: Sequence[CascadeItem], low: float, high: float, sizes: dict[str, int]) -> dict[str, object]:
    """The cascade at one band: share of items escalated, mean reasoning seconds per item, per-benchmark
    F1 and their average weighted by ``sizes`` (each benchmark's full-set size, as the paper weights)."""
    by_benchmark: dict[str, tuple[list[str], list[str]]] = {}
    escalated = 0
    seconds = 0.0
    for item in items:
        label, up = cascade_label(item, low, high)
        escalated += up
        seconds += item.reasoning_s if up else 0.0
        golds, preds = by_benchmark.setdefault(item.benchmark, ([], []))
        golds.append(item.gold)
        preds.append(_scored(item.gold, label, Task(item.task)))
    f1 = {name: binary_scores(golds, preds, Task(_task(items, name)).positive.value).f1
          for name, (golds, preds) in by_benchmark.items()}  # fmt: skip
    total = sum(sizes[name] for name in f1)
    return {
        "low": low,
        "high": high,
        "escalated": escalated / max(len(items), 1),
        "reasoning_s_per_item": seconds / max(len(items), 1),
        "f1": f1,
        "weighted_f1": sum(f1[name] * sizes[name] for name in f1) / total if total else 0.0,
    }


def _task(items: Iterable[CascadeItem], benchmark: str) -> str:
    return next(item.task for item in items if item.benchmark == benchmark)


def curve(items: Sequence[CascadeItem], bands: Iterable[tuple[float, float]], sizes: dict[str, int]) -> list[dict]:
    """:func:`curve_point` at every band."""
    return [curve_point(items, low, high, sizes) for low, high in bands]


def pareto(points: Sequence[dict]) -> list[dict]:
    """The points no other point beats on both escalation share (lower) and weighted F1 (higher)."""
    front = []
    for point in sorted(points, key=lambda p: (p["escalated"], -p["weighted_f1"])):
        if not front or point["weighted_f1"] > front[-1]["weighted_f1"]:
            front.append(point)
    return front
