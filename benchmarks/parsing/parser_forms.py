"""Count each output form of the published GuardReasoner predictions (for docs/protocol.md).

Usage: .venv/bin/python scripts/parser_forms.py [../shared/data/predictions]
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from guardsdk import parse_output
from guardsdk.families.guardreasoner.parser import answer_values
from guardsdk.families.guardreasoner.template import has_response

FORMS = {
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


def main(root: Path) -> None:
    counts: Counter[str] = Counter()
    status: Counter[str] = Counter()
    total = 0
    for path in sorted(root.glob("*/*/generated_predictions.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["predict"]
            verdict = parse_output(text, has_response=has_response(row["prompt"]))
            status[verdict.parse_status.value] += 1
            total += 1
            for name, test in FORMS.items():
                counts[name] += bool(test(text, verdict))
    print(f"| form | outputs (of {total}) |\n|---|---|")
    for name in FORMS:
        print(f"| {name} | {counts[name]} |")
    print("\nparse status: " + ", ".join(f"{k} {v}" for k, v in status.most_common()))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/predictions")
