"""Count each output form of the published GuardReasoner predictions (for docs/protocol.md).

Usage: .venv/bin/python benchmarks/parsing/parser_forms.py [../shared/data/predictions]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import PREDICTIONS, prediction_files, read_jsonl


def forms() -> dict[str, Callable]:
    """Each form counted: its name, and a test of an output's text and verdict."""
    from guardsdk.families.guardreasoner.parser import answer_values

    return {
        "final 'Answers:' block after the reasoning": lambda t, v: t.count("Answers:") == 1,
        "several 'Answers:' blocks (per task, or leaked)": lambda t, v: t.count("Answers:") > 1,
        "'# Answers' heading instead of 'Answers:'": lambda t, v: "Answers:" not in t and "# Answers" in t,
        "'---' separator before the answers": lambda t, v: "\n---\n" in t,
        "a 'None' value": lambda t, v: any("none" in vals for vals in answer_values(t).values()),
        "an 'ambiguous' value": lambda t, v: any("ambiguous" in vals for vals in answer_values(t).values()),
        "comma list value ('harmful, None, None')": lambda t, v: re.search(r"(?im)^request:\s*\w+,", t) is not None,
        "leaked 'The ground truth is' block": lambda t, v: "the ground truth is" in t.lower(),
        "key or label not in canonical case": lambda t, v: (
            re.search(
                r"(?m)^(REQUEST|request|COMPLETION|completion|RESPONSE|response)\s*:|:\s*(Harmful|Unharmful|Refusal|Compliance)\b",
                t,
            )
            is not None
        ),
        "runaway repetition, no answers": lambda t, v: v.parse_status.value == "runaway",
        "no answer line at all": lambda t, v: not any(answer_values(t).values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", nargs="?", type=Path, default=PREDICTIONS, metavar="PREDICTIONS",
                        help="folder of <size>/<Benchmark>/generated_predictions.jsonl "
                        "(default: ../shared/data/predictions from the repo root)")  # fmt: skip
    args = parser.parse_args()
    from guardsdk.families.guardreasoner.parser import parse_output
    from guardsdk.families.guardreasoner.template import has_response

    tests = forms()
    counts: Counter[str] = Counter()
    status: Counter[str] = Counter()
    total = 0
    for path in prediction_files(args.predictions):
        for row in read_jsonl(path):
            text = row["predict"]
            verdict = parse_output(text, has_response=has_response(row["prompt"]))
            status[verdict.parse_status.value] += 1
            total += 1
            for name, test in tests.items():
                counts[name] += bool(test(text, verdict))
    print(f"| form | outputs (of {total}) |\n|---|---|")
    for name in tests:
        print(f"| {name} | {counts[name]} |")
    print("\nparse status: " + ", ".join(f"{k} {v}" for k, v in status.most_common()))


if __name__ == "__main__":
    main()
