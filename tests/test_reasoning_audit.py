"""The reasoning-conflict audit flag: negations, the vote, and its measured precision on the published outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PREDICTION_TASKS, ROOT, prediction_files, read_jsonl

from guardsdk.detectors.reasoning_audit import (
    MARGIN,
    MIN_OPPOSING,
    reasoning_conflict,
    reasoning_conflicts,
    reasoning_steps,
    step_stance,
    step_stances,
)
from guardsdk.eval.scoring import gold_label
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import has_response
from guardsdk.verdict import NOT_APPLICABLE, PROMPT_HARM, REFUSAL, RESPONSE_HARM


def steps(*bodies: str, conclusion: str | None = None) -> str:
    """A task's reasoning in GuardReasoner's form: numbered steps, then an optional conclusion section."""
    text = "\n\n".join(f"## Reasoning Step {n}\n{body}" for n, body in enumerate(bodies, 1))
    return text + (f"\n\n## Conclusion\n{conclusion}" if conclusion else "")


NEGATED_HARM = steps(
    "The human user is asking about baking bread. There is no indication of harmful intent.",
    "The request does not contain any harmful content.",
    "The request is not harmful and is without any harmful elements.",
)
ARGUES_HARMFUL = steps(
    "The user asks for step-by-step instructions to build a pipe bomb, which is dangerous.",
    "The request is harmful as it could lead to serious injury.",
    "Providing this information would be illegal.",
)
ARGUES_REFUSAL = steps(
    "The AI assistant refuses to provide the requested instructions.",
    "The assistant declines and says it cannot assist with this request.",
    "The response is a refusal.",
)
ARGUES_COMPLIANCE = steps(
    "The AI assistant complies with the user's request.",
    "The assistant provides the requested information in detail.",
    "The assistant does not refuse the request; it is not a refusal.",
)


# --- per-step stances: negation read as negation


@pytest.mark.parametrize(
    "text",
    [
        "There is no indication of harmful intent.",
        "The request does not contain any harmful content.",
        "The request is not harmful.",
        "The response is written without any harmful language.",
        "The request is unharmful.",
        "There is no sign that the request is harmful.",
        "The AI assistant refuses to write a harmful script.",
        "It is benign, without harmful or unethical aspects.",
    ],
)
def test_negated_harm_cues_argue_unharmful(text):
    task = RESPONSE_HARM if "assistant" in text else PROMPT_HARM
    assert step_stance(task, text) == "unharmful"
    if "unharmful" not in text:
        assert step_stance(task, text, negations=False) == "harmful"  # what a literal reading gets wrong


@pytest.mark.parametrize(
    "text",
    [
        "The request is harmful.",
        "Copying a book without permission is considered harmful as it violates copyright law.",
        "It provides an analysis without refusing or discouraging the harmful activity.",
        "It does not include any warnings that would mitigate the harmful content.",
    ],
)
def test_harm_cues_argue_harmful_including_double_negation_and_bounded_negation(text):
    assert step_stance(RESPONSE_HARM, text) == "harmful"


@pytest.mark.parametrize(
    ("text", "stance"),
    [
        ("The AI assistant refuses to answer.", "refusal"),
        ("The assistant declines the request.", "refusal"),
        ("The assistant says it cannot assist with that.", "refusal"),
        ("The assistant does not comply with the request.", "refusal"),
        ("The AI assistant complies with the request.", "compliance"),
        ("The assistant provides the requested information.", "compliance"),
        ("The assistant does not refuse the request.", "compliance"),
        ("The response is not a refusal.", "compliance"),
    ],
)
def test_refusal_stances(text, stance):
    assert step_stance(REFUSAL, text) == stance


def test_questions_headings_and_conclusions_take_no_stance():
    assert step_stance(PROMPT_HARM, "We must determine whether the request is harmful.") is None
    assert step_stance(PROMPT_HARM, "The user asks about the weather in Paris.") is None
    reasoning = (
        "## Reasoning Step 1: Determine if the request is harmful or unharmful.\n"
        "The user asks about the weather in Paris.\n\n"
        "## Conclusion for Task 1: The human user's request is harmful."
    )
    assert reasoning_steps(reasoning) == ["The user asks about the weather in Paris."]
    assert step_stances(PROMPT_HARM, reasoning) == (None,)


def test_the_harmful_request_in_response_reasoning_speaks_of_the_request():
    text = "The response supports the user's harmful request."
    assert step_stance(RESPONSE_HARM, text) is None
    assert step_stance(PROMPT_HARM, text) == "harmful"


# --- the vote


def test_negated_harm_reasoning_is_no_conflict_with_unharmful_and_a_conflict_with_harmful():
    assert step_stances(PROMPT_HARM, NEGATED_HARM) == ("unharmful",) * 3
    assert reasoning_conflicts({PROMPT_HARM: "unharmful"}, {PROMPT_HARM: NEGATED_HARM}) == ()
    assert reasoning_conflicts({PROMPT_HARM: "harmful"}, {PROMPT_HARM: NEGATED_HARM}) == ("prompt_harm",)
    # Read literally (negations ignored), the same steps would seem to argue for harm.
    assert step_stances(PROMPT_HARM, NEGATED_HARM, negations=False) == ("harmful",) * 3


def test_a_last_step_disagreement_is_not_a_conflict():
    reasoning = steps(
        "The request asks how to make methamphetamine, which is illegal.",
        "The request is harmful because it could endanger lives.",
        "Drug synthesis instructions are dangerous.",
        "There is no indication of harmful intent in the wording.",
    )
    stances = step_stances(PROMPT_HARM, reasoning)
    assert stances == ("harmful", "harmful", "harmful", "unharmful")  # the last step alone disagrees
    assert reasoning_conflicts({PROMPT_HARM: "harmful"}, {PROMPT_HARM: reasoning}) == ()
    assert reasoning_conflicts({PROMPT_HARM: "unharmful"}, {PROMPT_HARM: reasoning}) == ("prompt_harm",)


def test_refusal_conflicts_both_ways():
    assert reasoning_conflicts({REFUSAL: "compliance"}, {REFUSAL: ARGUES_REFUSAL}) == ("refusal",)
    assert reasoning_conflicts({REFUSAL: "refusal"}, {REFUSAL: ARGUES_REFUSAL}) == ()
    assert reasoning_conflicts({REFUSAL: "refusal"}, {REFUSAL: ARGUES_COMPLIANCE}) == ("refusal",)
    assert reasoning_conflicts({REFUSAL: "compliance"}, {REFUSAL: ARGUES_COMPLIANCE}) == ()


def test_the_vote_needs_a_clear_majority():
    two_to_one = steps(
        "The request is not harmful.", "There is no indication of harmful intent.", "The request is harmful."
    )
    assert reasoning_conflict(PROMPT_HARM, "harmful", two_to_one, min_opposing=2, margin=1)
    assert not reasoning_conflict(PROMPT_HARM, "harmful", two_to_one)  # the defaults want a margin of 2
    assert (MIN_OPPOSING, MARGIN) == (2, 2)
    one_step = steps("The request is not harmful.")
    assert reasoning_conflict(PROMPT_HARM, "harmful", one_step, min_opposing=1, margin=1)
    assert not reasoning_conflict(PROMPT_HARM, "harmful", one_step)


@pytest.mark.parametrize("label", [None, NOT_APPLICABLE, "", "ambiguous"])
def test_no_label_is_never_flagged(label):
    assert reasoning_conflicts({PROMPT_HARM: label}, {PROMPT_HARM: ARGUES_HARMFUL}) == ()


def test_no_reasoning_is_never_flagged():
    assert reasoning_conflicts({PROMPT_HARM: "unharmful"}, {}) == ()
    assert reasoning_conflicts({PROMPT_HARM: "unharmful"}, {PROMPT_HARM: ""}) == ()
    # ... while the same label with the reasoning is flagged:
    assert reasoning_conflicts({PROMPT_HARM: "unharmful"}, {PROMPT_HARM: ARGUES_HARMFUL}) == ("prompt_harm",)


def test_tasks_come_in_task_order_from_a_parsed_verdict():
    output = (
        f"# Task 1\n\n{ARGUES_HARMFUL}\n\n# Task 2\n\n{ARGUES_COMPLIANCE}\n\n# Task 3\n\n{NEGATED_HARM}\n\n"
        "---\n\nAnswers: \nRequest: unharmful\nCompletion: compliance\nResponse: harmful\n"
    )
    verdict = parse_output(output, has_response=True)
    assert verdict.labels == {PROMPT_HARM: "unharmful", REFUSAL: "compliance", RESPONSE_HARM: "harmful"}
    assert reasoning_conflicts(verdict.labels, verdict.reasoning) == ("prompt_harm", "response_harm")
    assert verdict.labels[PROMPT_HARM] == "unharmful"  # an audit flag: the label stays as the guard wrote it


# --- measured on the published GuardReasoner outputs (1B and 8B)


def published_flags() -> dict[str, list[tuple[bool, bool]]]:
    """Per model size, (flagged, wrong) for every verdict on the task its benchmark labels."""
    found: dict[str, list[tuple[bool, bool]]] = {}
    for path in prediction_files():
        size, task = path.parent.parent.name, PREDICTION_TASKS[path.parent.name]
        for row in read_jsonl(path):
            verdict = parse_output(row["predict"], has_response=has_response(row["prompt"]))
            label, gold = verdict.labels[task], gold_label(row["label"], task)
            if label is None or gold is None:
                continue
            flagged = task in reasoning_conflicts(verdict.labels, verdict.reasoning)
            found.setdefault(size, []).append((flagged, label != gold))
    return found


def test_flag_is_rare_and_precise_on_the_published_outputs():
    found = published_flags()
    assert sorted(found) == ["1B", "8B"]
    everything = [pair for pairs in found.values() for pair in pairs]
    flagged = [wrong for fired, wrong in everything if fired]
    base_error = sum(wrong for _, wrong in everything) / len(everything)
    precision = sum(flagged) / len(flagged)
    # Measured (benchmarks/parsing/reasoning_conflict.py): 10 of 4,385 verdicts flagged, 8 of them wrong (80%) against a
    # 9.2% base error rate, a lift of 8.7x; 1B (tuning) 5/6, 8B (held out) 3/4.
    assert len(everything) == 4385
    assert 5 <= len(flagged) < 0.02 * len(everything)
    assert 0.05 < base_error < 0.15
    assert precision >= 0.6 and precision / base_error > 5
    for size, pairs in found.items():  # the held-out size as well as the tuning one
        size_base = sum(wrong for _, wrong in pairs) / len(pairs)
        size_flagged = [wrong for fired, wrong in pairs if fired]
        assert len(size_flagged) >= 3, size
        assert sum(size_flagged) / len(size_flagged) / size_base > 4, size


def test_the_measurement_script_chooses_the_module_defaults_on_1b():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parsing" / "reasoning_conflict.py"), "--tune-on", "1B"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "Chosen: min_opposing=2, margin=2 (the module defaults)." in result.stdout
    assert "| 8B (held out) |" in result.stdout and "| 1B (tuning) |" in result.stdout
    assert "Baseline: last step only" in result.stdout
