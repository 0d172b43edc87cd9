"""Measure the reasoning audit flag (guardsdk.detectors.reasoning_audit) on the published GuardReasoner outputs.

Every output under ``--predictions`` (``<size>/<Benchmark>/generated_predictions.jsonl``) is read with the
repo's parser. For each verdict on the task its benchmark labels (prompt harm, refusal or response harm)
that has a label: did the flag fire, and is the label wrong against gold? The vote's two parameters are
chosen on one model size (``--tune-on``) and the others are reported as held out. Two "last step only"
baselines are scored the same way.

Usage: .venv/bin/python benchmarks/parsing/reasoning_conflict.py [--predictions DIR] [--tune-on 1B]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import PREDICTIONS, prediction_files, read_jsonl

#: The grid the vote's parameters are chosen from, and the fewest flags a choice must make on the tuning set.
GRID = [(min_opposing, margin) for min_opposing in (1, 2, 3) for margin in (1, 2, 3)]
MIN_FLAGS = 3


@dataclass(frozen=True)
class Item:
    """One scored verdict: the benchmark's task, the guard's label and reasoning for it, the gold label."""

    size: str
    benchmark: str
    task: str
    label: str
    gold: str
    reasoning: str

    @property
    def wrong(self) -> bool:
        return self.label != self.gold


Rule = Callable[[Item], bool]


def load(predictions: Path) -> tuple[list[Item], dict[str, int]]:
    """The scored verdicts of every published output, and per size how many outputs the flag names any task
    of (the benchmark's task or not)."""
    from guardsdk.detectors.reasoning_audit import reasoning_conflicts
    from guardsdk.eval.benchmarks import benchmark
    from guardsdk.eval.scoring import gold_label
    from guardsdk.families.guardreasoner.parser import parse_output
    from guardsdk.families.guardreasoner.template import has_response

    items: list[Item] = []
    any_task: dict[str, int] = {}
    files = prediction_files(predictions)
    if not files:
        raise SystemExit(f"no generated_predictions.jsonl under {predictions}")
    for path in files:
        size, name = path.parent.parent.name, path.parent.name
        task = benchmark(name).task
        for row in read_jsonl(path):
            verdict = parse_output(row["predict"], has_response=has_response(row["prompt"]))
            any_task[size] = any_task.get(size, 0) + bool(reasoning_conflicts(verdict.labels, verdict.reasoning))
            label, gold = verdict.labels[task], gold_label(row["label"], task)
            if label is not None and gold is not None:
                items.append(Item(size, name, task, str(label), gold, verdict.reasoning.get(task, "")))
    return items, any_task


def vote(min_opposing: int, margin: int) -> Rule:
    from guardsdk.detectors.reasoning_audit import reasoning_conflict

    return lambda item: reasoning_conflict(
        item.task, item.label, item.reasoning, min_opposing=min_opposing, margin=margin
    )


def last_step(*, negations: bool) -> Rule:
    """The baseline: the last argument step's stance opposes the label."""
    from guardsdk.detectors.reasoning_audit import step_stances

    def rule(item: Item) -> bool:
        stances = step_stances(item.task, item.reasoning, negations=negations)
        return bool(stances) and stances[-1] is not None and stances[-1] != item.label

    return rule


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Row:
    verdicts: int
    errors: int
    flagged: int
    flagged_wrong: int

    @classmethod
    def of(cls, items: Sequence[Item], rule: Rule) -> Row:
        flags = [item for item in items if rule(item)]
        return cls(len(items), sum(i.wrong for i in items), len(flags), sum(i.wrong for i in flags))

    @property
    def precision(self) -> float:
        return self.flagged_wrong / self.flagged if self.flagged else 0.0

    @property
    def base(self) -> float:
        return self.errors / self.verdicts if self.verdicts else 0.0


def table(title: str, items: Sequence[Item], rule: Rule, sizes: Sequence[str], tune_on: str) -> None:
    print(f"\n{title}\n")
    print(
        "| model | verdicts | flagged | fire rate | wrong / flagged | precision (95% CI) | base error | lift "
        "| errors caught |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups = [(f"{s} ({'tuning' if s == tune_on else 'held out'})", [i for i in items if i.size == s]) for s in sizes]
    held = [i for i in items if i.size != tune_on]
    if len(sizes) > 2:
        groups.append(("held out, together", held))
    for name, group in [*groups, ("overall", list(items))]:
        row = Row.of(group, rule)
        low, high = wilson(row.flagged_wrong, row.flagged)
        precision = f"{row.precision:.0%} ({low:.0%}-{high:.0%})" if row.flagged else "-"
        lift = f"{row.precision / row.base:.1f}x" if row.flagged and row.base else "-"
        caught = f"{row.flagged_wrong / row.errors:.1%}" if row.errors else "-"
        print(
            f"| {name} | {row.verdicts} | {row.flagged} | {row.flagged / row.verdicts:.2%} "
            f"| {row.flagged_wrong} / {row.flagged} | {precision} | {row.base:.1%} | {lift} | {caught} |"
        )


def choose(items: Sequence[Item]) -> tuple[int, int]:
    """The grid point with the highest Wilson lower bound on precision (at least MIN_FLAGS flags); ties go to
    the stricter rule (larger margin, then more opposing steps)."""
    print(
        f"Choosing (min_opposing, margin) on {len(items)} verdicts: the highest Wilson lower bound on precision "
        f"with at least {MIN_FLAGS} flags; ties go to the stricter rule.\n"
    )
    print("| min_opposing | margin | flagged | wrong | precision lower bound |\n|---|---|---|---|---|")
    scored = []
    for min_opposing, margin in GRID:
        row = Row.of(items, vote(min_opposing, margin))
        low = wilson(row.flagged_wrong, row.flagged)[0] if row.flagged >= MIN_FLAGS else -1.0
        print(f"| {min_opposing} | {margin} | {row.flagged} | {row.flagged_wrong} | {max(low, 0):.1%} |")
        scored.append((low, margin, min_opposing))
    low, margin, min_opposing = max(scored)
    if low < 0:
        raise SystemExit(f"no grid point flags at least {MIN_FLAGS} verdicts on the tuning set")
    return min_opposing, margin


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--predictions",
        type=Path,
        default=PREDICTIONS,
        help="folder of <size>/<Benchmark>/generated_predictions.jsonl (default: ../shared/data/predictions "
        "from the repo root)",
    )
    parser.add_argument(
        "--tune-on", default="1B", help="the model size the vote's parameters are chosen on; the others are held out"
    )
    args = parser.parse_args(argv)
    from guardsdk.detectors.reasoning_audit import MARGIN, MIN_OPPOSING

    items, any_task = load(args.predictions)
    sizes = sorted({item.size for item in items}, key=lambda s: (len(s), s))
    if args.tune_on not in sizes:
        parser.error(f"--tune-on {args.tune_on!r}: not one of the sizes found ({', '.join(sizes)})")
    held_out = [s for s in sizes if s != args.tune_on]
    print(f"Published GuardReasoner outputs under {args.predictions}: sizes {', '.join(sizes)}.")
    print(f"Parameters chosen on {args.tune_on} only; {', '.join(held_out)} held out.\n")

    min_opposing, margin = choose([i for i in items if i.size == args.tune_on])
    same = (min_opposing, margin) == (MIN_OPPOSING, MARGIN)
    print(
        f"\nChosen: min_opposing={min_opposing}, margin={margin} "
        f"({'the module defaults' if same else f'module defaults are {MIN_OPPOSING}, {MARGIN}'})."
    )
    print(
        "Scored: each output's verdict on the task its benchmark labels, where the guard gave a label. "
        "A flag is 'wrong' when that label disagrees with gold."
    )

    rules = [
        (f"Vote over steps (min_opposing={min_opposing}, margin={margin})", vote(min_opposing, margin)),
        ("Baseline: last step only (same negation-aware reader)", last_step(negations=True)),
        ("Baseline: last step only, cues read literally (no negation handling)", last_step(negations=False)),
    ]
    for title, rule in rules:
        table(title, items, rule, sizes, args.tune_on)
    named = ", ".join(f"{size} {count}" for size, count in sorted(any_task.items()))
    print(f"\nOutputs where the default flag names any task (scored or not): {named}.")


if __name__ == "__main__":
    main()
