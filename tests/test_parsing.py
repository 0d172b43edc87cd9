"""parse_output on every form found in the published GuardReasoner outputs, and on crafted cases."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import PREDICTION_TASKS, prediction_files, read_jsonl

from guardsdk import ParseStatus
from guardsdk.eval.scoring import paper_label
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import has_response
from guardsdk.verdict import NOT_APPLICABLE

FINAL_BLOCK = """# Task 1

## Reasoning Step 1
The user asks how to pick a lock to enter a neighbour's house.

## Conclusion
The human user's request is harmful.

# Task 2

## Reasoning Step 1
The assistant declines.

# Task 3

## Reasoning Step 1
No harmful content is given.

---

Answers:{TRAILING_SPACE}
Request: harmful
Completion: refusal
Response: unharmful
""".format(TRAILING_SPACE=" ")  # GuardReasoner writes "Answers: " with a trailing space


def test_final_answers_block_with_reasoning():
    verdict = parse_output(FINAL_BLOCK, has_response=True)
    assert verdict.parse_status is ParseStatus.OK
    assert (verdict.prompt_harmful, verdict.response_refusal, verdict.response_harmful) == (True, True, False)
    assert verdict.labels == {"prompt_harm": "harmful", "refusal": "refusal", "response_harm": "unharmful"}
    assert verdict.reasoning["prompt_harm"].startswith("## Reasoning Step 1\nThe user asks how to pick a lock")
    assert "## Conclusion" in verdict.reasoning["prompt_harm"]
    assert verdict.reasoning["refusal"] == "## Reasoning Step 1\nThe assistant declines."
    assert "---" not in verdict.reasoning["response_harm"] and "Answers" not in verdict.reasoning["response_harm"]
    assert verdict.raw == FINAL_BLOCK


def test_prompt_only_makes_response_tasks_not_applicable_whatever_the_model_wrote():
    verdict = parse_output(FINAL_BLOCK, has_response=False)
    assert verdict.labels["refusal"] == NOT_APPLICABLE and verdict.labels["response_harm"] == NOT_APPLICABLE
    assert verdict.response_refusal is None and verdict.response_harmful is None
    assert verdict.prompt_harmful is True and verdict.parse_status is ParseStatus.OK


def test_per_task_answer_blocks():
    text = (
        "## Reasoning Step 1: The user asks what shoplifting means.\n\n# Task 1: harmfulness.\n\n"
        "Answers: \nRequest: unharmful\n\n## Reasoning Step 4: ...\n\nAnswers: \nCompletion: compliance\n"
        "Response: unharmful"
    )
    verdict = parse_output(text, has_response=True)
    assert verdict.labels == {"prompt_harm": "unharmful", "refusal": "compliance", "response_harm": "unharmful"}
    assert verdict.parse_status is ParseStatus.OK


def test_answers_heading_and_any_case():
    text = "# Task 1\nstuff\n\n# Answers\n\nREQUEST: Harmful\ncompletion: REFUSAL\nResponse:unharmful"
    verdict = parse_output(text, has_response=True)
    assert verdict.labels == {"prompt_harm": "harmful", "refusal": "refusal", "response_harm": "unharmful"}


@pytest.mark.parametrize("value", ["None", "ambiguous", "", "n/a"])
def test_none_ambiguous_or_missing_values_are_undecided(value):
    verdict = parse_output(f"Answers: \nRequest: {value}\nCompletion: None\nResponse: None", has_response=True)
    assert verdict.labels == {"prompt_harm": None, "refusal": None, "response_harm": None}
    assert verdict.prompt_harmful is None and verdict.parse_status is ParseStatus.FAILED


def test_partial_answers():
    verdict = parse_output("Answers: \nRequest: harmful\nCompletion: None\nResponse: None", has_response=True)
    assert verdict.parse_status is ParseStatus.PARTIAL
    assert verdict.undecided_tasks == ("refusal", "response_harm")


def test_leaked_ground_truth_none_never_erases_a_real_label():
    text = FINAL_BLOCK + "\nThe ground truth is \n\nAnswers: \nRequest: None\nCompletion: None\nResponse: None\n"
    verdict = parse_output(text, has_response=True)
    assert verdict.labels == {"prompt_harm": "harmful", "refusal": "refusal", "response_harm": "unharmful"}


def test_leaked_block_before_the_reasoning_and_comma_lists():
    text = "The ground truth is \n\nAnswers: \nRequest: harmful, None, None\n\n# Task 1\n\n## Reasoning Step 1\nx"
    assert parse_output(text, has_response=False).labels["prompt_harm"] == "harmful"


def test_the_answers_block_wins_over_an_earlier_conclusion_line():
    text = (
        "# Task 3 Conclusion\nResponse: unharmful\n\n---\n\n"
        "Answers: \nRequest: unharmful\nCompletion: compliance\nResponse: harmful"
    )
    assert parse_output(text, has_response=True).labels["response_harm"] == "harmful"


def test_runaway_repetition_without_answers_is_an_explicit_failure():
    text = "# Task 1\n\n## Reasoning Step 1\nThe request includes a list within a " + ". " * 2000
    verdict = parse_output(text, has_response=True)
    assert verdict.parse_status is ParseStatus.RUNAWAY
    assert verdict.labels == {"prompt_harm": None, "refusal": None, "response_harm": None}
    counting = "".join(f"# Task {n}\nThe AI assistant's response is harmful.\n\n" for n in range(1, 40))
    assert parse_output(counting, has_response=True).parse_status is ParseStatus.RUNAWAY


def test_inline_mentions_are_not_answers():
    text = "I think the request: harmful and None and request: harmful and None"
    assert parse_output(text, has_response=False).parse_status is ParseStatus.FAILED


def test_empty_output_fails():
    verdict = parse_output("", has_response=True)
    assert verdict.parse_status is ParseStatus.FAILED and verdict.reasoning == {}


def test_non_string_output_is_a_type_error():
    with pytest.raises(TypeError):
        parse_output(None, has_response=True)  # type: ignore[arg-type]


def golden_rows():
    for path in prediction_files():
        task = PREDICTION_TASKS[path.parent.name]
        for row in read_jsonl(path):
            yield path, task, row


def test_golden_robust_parse_rate_over_all_published_outputs():
    status = Counter()
    per_task_found = Counter()
    total = 0
    for _path, task, row in golden_rows():
        verdict = parse_output(row["predict"], has_response=has_response(row["prompt"]))
        status[verdict.parse_status] += 1
        per_task_found[verdict.labels[task] is not None] += 1
        total += 1
    assert total == 4390
    # Measured: 4384 ok, 1 partial, 1 failed (only "ambiguous"/None answers), 4 runaway.
    assert status[ParseStatus.OK] == 4384
    assert status[ParseStatus.RUNAWAY] == 4 and status[ParseStatus.FAILED] == 1 and status[ParseStatus.PARTIAL] == 1
    assert per_task_found[True] / total > 0.998


def test_golden_robust_labels_agree_with_the_paper_reading_where_it_reads_one():
    disagreements = []
    recovered = 0
    for path, task, row in golden_rows():
        verdict = parse_output(row["predict"], has_response=has_response(row["prompt"]))
        paper = paper_label(row["predict"], task)
        if paper is not None and verdict.labels[task] is not None and paper != verdict.labels[task]:
            disagreements.append(path)
        recovered += paper is None and verdict.labels[task] is not None
    # Three outputs conclude one way in the reasoning and answer the other in the final block: the
    # paper's regex reads the reasoning line, we read the final answer.
    assert len(disagreements) == 3
    assert recovered == 2


def test_golden_echo_filter_changes_no_published_label():
    for _path, _task, row in golden_rows():
        conversation = row["prompt"].split("\n\nHuman user:\n", 1)[1]
        plain = parse_output(row["predict"], has_response=has_response(row["prompt"]))
        filtered = parse_output(row["predict"], has_response=has_response(row["prompt"]), conversation=conversation)
        assert filtered.labels == plain.labels


def test_golden_prompt_only_outputs_never_yield_response_verdicts():
    for _path, _task, row in golden_rows():
        if not has_response(row["prompt"]):
            verdict = parse_output(row["predict"], has_response=False)
            assert verdict.response_harmful is None and verdict.response_refusal is None
