"""Policy decisions on verdicts parsed from real GuardReasoner outputs."""

from __future__ import annotations

import dataclasses

import pytest

from guardsdk import OnUndecided, ParseStatus, Policy
from guardsdk.families.guardreasoner.parser import parse_output

HARMFUL_PROMPT_REFUSED = "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful\n"
BENIGN_COMPLIED = "Answers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful\n"
HARMFUL_RESPONSE = "Answers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"


def test_default_gates_prompt_and_response_harm():
    assert Policy().decide(parse_output(BENIGN_COMPLIED, has_response=True)).allowed
    harmful_prompt = Policy().decide(parse_output(HARMFUL_PROMPT_REFUSED, has_response=True))
    assert not harmful_prompt.allowed and harmful_prompt.unsafe == ("prompt_harm",)
    both = Policy().decide(parse_output(HARMFUL_RESPONSE, has_response=True))
    assert both.unsafe == ("prompt_harm", "response_harm")


def test_output_only_gate_lets_a_refused_harmful_request_through():
    policy = Policy(gates=frozenset({"response_harm"}))
    assert policy.decide(parse_output(HARMFUL_PROMPT_REFUSED, has_response=True)).allowed
    assert not policy.decide(parse_output(HARMFUL_RESPONSE, has_response=True)).allowed


def test_not_applicable_tasks_never_gate():
    verdict = parse_output("Answers:\nRequest: unharmful\nCompletion: None\nResponse: None", has_response=False)
    decision = Policy(gates=frozenset({"prompt_harm", "response_harm", "refusal"})).decide(verdict)
    assert decision.allowed and decision.undecided == ()


def test_undecided_fails_closed_by_default_and_says_why():
    verdict = parse_output("no answers here", has_response=False)
    decision = Policy().decide(verdict)
    assert not decision.allowed and decision.undecided == ("prompt_harm",)
    assert "failing closed" in decision.reason and "failed" in decision.reason


def test_fail_open_is_an_explicit_choice_and_is_marked():
    verdict = dataclasses.replace(parse_output("", has_response=True), parse_status=ParseStatus.ERROR, error="timeout")
    decision = Policy(on_undecided=OnUndecided.FAIL_OPEN).decide(verdict)
    assert decision.allowed and decision.fail_open and "timeout" in decision.reason


def test_unsafe_beats_undecided():
    verdict = parse_output("Answers:\nRequest: harmful\nCompletion: None\nResponse: None", has_response=True)
    decision = Policy(on_undecided="fail_open").decide(verdict)
    assert not decision.allowed and decision.unsafe == ("prompt_harm",) and decision.undecided == ("response_harm",)


def test_unknown_gate_is_rejected():
    with pytest.raises(ValueError, match="unknown task"):
        Policy(gates=frozenset({"toxicity"}))
