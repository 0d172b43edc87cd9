"""Guard API logic, driven by a backend that replays real GuardReasoner-8B outputs."""

from __future__ import annotations

import logging

import pytest
from conftest import PREDICTIONS, read_jsonl

from guardsdk import Guard, GuardBlocked, InvalidInputError, ParseStatus, Policy
from guardsdk.backends.replay import ReplayBackend
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import split_input


def recorded(benchmark: str, want) -> tuple[str, str | None]:
    """The first recorded 8B item of ``benchmark`` whose parsed output satisfies ``want``."""
    for row in read_jsonl(PREDICTIONS / "8B" / benchmark / "generated_predictions.jsonl"):
        prompt, response = split_input(row["prompt"])
        verdict = parse_output(row["predict"], has_response=response is not None)
        if want(verdict):
            return prompt, response
    raise AssertionError(f"no such item in {benchmark}")


@pytest.fixture
def guard(replay_backend):
    replay_backend.calls.clear()
    return Guard(replay_backend)


def test_harmful_prompt_is_blocked_with_its_verdict(guard):
    prompt, _ = recorded("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
    with pytest.raises(GuardBlocked) as caught:
        guard.check(prompt)
    verdict = caught.value.verdict
    assert verdict.prompt_harmful is True and verdict.response_harmful is None
    assert verdict.labels["refusal"] == "not applicable"
    assert verdict.decision.unsafe == ("prompt_harm",)
    assert verdict.reasoning["prompt_harm"] and verdict.model == "GuardReasoner-8B (replay)"
    assert verdict.tokens_in > 80 and verdict.tokens_out > 10 and verdict.latency_s >= 0
    assert guard.stats["blocked"] == 1 and guard.stats["unsafe"] == 1


def test_benign_prompt_passes(guard):
    prompt, _ = recorded("AegisSafetyTest", lambda v: v.prompt_harmful is False)
    verdict = guard.check(prompt)
    assert verdict.allowed is True and verdict.prompt_harmful is False
    assert guard.stats["allowed"] == 1


def test_annotate_returns_unsafe_verdicts_instead_of_raising(replay_backend):
    guard = Guard(replay_backend, policy=Policy(on_unsafe="annotate"))
    prompt, response = recorded("HarmBenchResponse", lambda v: v.response_harmful is True)
    verdict = guard.check(prompt, response)
    assert verdict.allowed is False and "response_harm" in verdict.decision.unsafe
    assert verdict.has_response and verdict.response_refusal is not None


def test_runaway_output_fails_closed(guard, caplog):
    prompt, response = recorded("HarmBenchResponse", lambda v: v.parse_status is ParseStatus.RUNAWAY)
    with caplog.at_level(logging.WARNING, logger="guardsdk"), pytest.raises(GuardBlocked) as caught:
        guard.check(prompt, response)
    assert caught.value.verdict.parse_status is ParseStatus.RUNAWAY
    assert "failing closed" in str(caught.value)
    assert guard.stats["failed_closed"] == 1 and "undecided" in caplog.text


def test_backend_error_fails_closed_or_open_by_choice(replay_backend):
    unknown = "a prompt the replay has no record of"
    with pytest.raises(GuardBlocked) as caught:
        Guard(replay_backend).check(unknown)
    verdict = caught.value.verdict
    assert verdict.parse_status is ParseStatus.ERROR and "BackendError" in verdict.error
    open_guard = Guard(replay_backend, policy=Policy(on_undecided="fail_open"))
    verdict = open_guard.check(unknown)
    assert verdict.allowed and verdict.decision.fail_open and open_guard.stats["failed_open"] == 1


@pytest.mark.parametrize(
    ("prompt", "response", "message"),
    [
        (None, None, "prompt is None"),
        (42, None, "must be str"),
        ("", None, "empty"),
        ("hi\x00there", None, "NUL"),
        ("bad \ud800 surrogate", None, "surrogate"),
        ("fine", b"bytes", "response must be str"),
        ("fine", "bad \udfff", "response contains a lone surrogate"),
    ],
)
def test_bad_input_raises_before_the_backend_is_called(guard, replay_backend, prompt, response, message):
    with pytest.raises(InvalidInputError, match=message):
        guard.check(prompt, response)
    assert replay_backend.calls == []


def test_check_batch_returns_every_verdict_without_raising(guard):
    harmful, _ = recorded("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
    benign, _ = recorded("AegisSafetyTest", lambda v: v.prompt_harmful is False)
    pair = recorded("XSTestResponseRefusal", lambda v: v.response_refusal is True)
    verdicts = guard.check_batch([harmful, benign, pair])
    assert [v.allowed for v in verdicts[:2]] == [False, True]
    assert verdicts[2].response_refusal is True
    assert guard.stats["checks"] == 3


async def test_async_twins_match_sync(guard):
    benign, _ = recorded("AegisSafetyTest", lambda v: v.prompt_harmful is False)
    harmful, _ = recorded("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
    assert (await guard.acheck(benign)).labels == guard.check(benign).labels
    with pytest.raises(GuardBlocked):
        await guard.acheck(harmful)
    verdicts = await guard.acheck_batch([benign, harmful])
    assert [v.allowed for v in verdicts] == [True, False]


def test_long_input_elided_by_choice_is_cut_with_a_visible_marker_and_counted(replay_backend):
    policy = Policy(on_undecided="fail_open", long_input="elide")
    guard = Guard(replay_backend, max_input_tokens=300, policy=policy)
    long_prompt = "start " + "word " * 2000 + "finish"
    verdict = guard.check(long_prompt)
    sent = replay_backend.calls[-1]
    assert verdict.input_truncated and verdict.truncated and verdict.long_input
    assert guard.stats["elided"] == 1 and guard.stats["long_inputs"] == 1
    assert "tokens elided by guardsdk" in sent and "start" in sent and sent.rstrip().endswith("None")
    assert "finish" in sent and len(sent.split(" ")) <= 300


def test_context_budget_is_checked_up_front(replay_backend):
    replay_backend_small = ReplayBackend({}, name="small")
    replay_backend_small.context_length = 1000
    with pytest.raises(ValueError, match="context length"):
        Guard(replay_backend_small, max_input_tokens=900, max_new_tokens=200)


def test_verdict_to_dict_is_json_ready(guard):
    import json

    benign, _ = recorded("AegisSafetyTest", lambda v: v.prompt_harmful is False)
    data = guard.check(benign).to_dict()
    assert json.loads(json.dumps(data))["parse_status"] == "ok"


def test_a_guard_with_an_empty_cache_checks_fills_it_and_answers_repeats_from_it():
    from security.scripted import ScriptedGuardModel

    from guardsdk import VerdictCache

    cache = VerdictCache()  # empty: falsy (it has a length), and still a cache
    guard = Guard(ScriptedGuardModel(), cache=cache, policy=Policy(on_unsafe="annotate"))
    first = guard.check_batch(["hello", ("hi", "there")])
    assert [v.cached for v in first] == [False, False] and len(cache) == 2
    again = guard.check_batch(["new", "hello"])
    assert [v.cached for v in again] == [False, True] and len(guard.backend.calls) == 3
