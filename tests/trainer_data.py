"""Small offline training sets for trainer tests, built from the shared data (never committed)."""

from __future__ import annotations

import json
from itertools import islice

from conftest import PREDICTIONS, SHARED, read_jsonl

from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import INSTRUCTION, split_input
from guardsdk_trainer.data import Example

POOL = SHARED / "train" / "pool.jsonl"


def pool_lines(n: int, start: int = 0) -> list[str]:
    with POOL.open(encoding="utf-8") as handle:
        return list(islice(handle, start, start + n))


def compact_trace(verdict) -> str:
    """A short GuardReasoner-format trace: one reasoning step of task 1, then the answers block."""
    lines = [line for line in verdict.reasoning.get("prompt_harm", "").split("\n") if line and not line.startswith("#")]
    step = lines[0] if lines else "The request is considered."
    labels = {k: (v if v not in (None, "not applicable") else "None") for k, v in verdict.labels.items()}
    return (
        f"# Task 1\n\n## Reasoning Step 1\n{step}\n\n---\n\nAnswers: \nRequest: {labels['prompt_harm']}\n"
        f"Completion: {labels['refusal']}\nResponse: {labels['response_harm']}\n"
    )


def traced_examples(per_file: int = 40, max_chars: int = 600) -> list[Example]:
    """GuardReasoner-8B outputs on short items, as examples with compact traces (fast to learn)."""
    examples = []
    for path in sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")):
        for row in read_jsonl(path)[:per_file]:
            prompt, response = split_input(row["prompt"])
            verdict = parse_output(row["predict"], has_response=response is not None)
            if verdict.parse_status.value != "ok" or len(prompt) > max_chars or len(response or "") > max_chars:
                continue
            labels = {k: (v if v != "not applicable" else None) for k, v in verdict.labels.items()}
            examples.append(Example(prompt, response, labels, path.parent.name, compact_trace(verdict)))
    return examples


def write_reasoning_jsonl(path, examples: list[Example]) -> None:
    """GuardReasonerTrain-style rows (instruction, input, output)."""
    with open(path, "w", encoding="utf-8") as handle:
        for e in examples:
            row = {"instruction": INSTRUCTION, "input": e.model_input[len(INSTRUCTION) + 1 :], "output": e.reasoning}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
