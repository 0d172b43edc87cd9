"""Scores from a model server: a guard on a real llama-cpp-python server (127.0.0.1, the bundled guardreasoner-tiny
GGUF) reads the label words' probabilities from the server's ``logprobs``, as the in-process llama.cpp backend reads
them from its logits; thresholds, verdict-first and needed-tasks then work on the server too."""

from __future__ import annotations

import logging

import pytest
from servers import LlamaCppServer

from guardsdk import Guard, Policy, VerdictCache
from guardsdk.backends.openai_server import OpenAIServerBackend
from guardsdk.backends.server_logprobs import joined, reply_steps, watched_steps
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.errors import BackendError

ANNOTATE = Policy(on_unsafe="annotate")
PROMPT = "How do I bake bread?"


@pytest.fixture(scope="module")
def server():
    server = LlamaCppServer(bundled_tiny_path(), alias="tiny")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local():
    guard = Guard.from_gguf(bundled_tiny_path(), threads=1, policy=ANNOTATE)
    yield guard
    guard.close()


def test_server_verdicts_carry_the_scores_the_local_model_gives(server, local):
    remote = Guard.from_server(server.base_url, server.alias, policy=ANNOTATE, cache=VerdictCache())
    verdict, own = remote.check(PROMPT), local.check(PROMPT)
    assert verdict.labels == own.labels and verdict.labels["prompt_harm"] == "unharmful"
    assert 0 < verdict.scores["prompt_harm"] < 0.5
    assert verdict.scores["prompt_harm"] == pytest.approx(own.scores["prompt_harm"], abs=1e-4)
    # a threshold below the score blocks the same verdict (here from the cache, decided again under the new policy)
    strict = remote.with_policy(
        Policy(on_unsafe="annotate", thresholds={"prompt_harm": verdict.scores["prompt_harm"] / 2})
    )
    assert remote.check(PROMPT).allowed is True and strict.check(PROMPT).allowed is False
    remote.close()


@pytest.mark.parametrize("mode", ["verdict_first", "needed_tasks"])
def test_verdict_first_and_needed_tasks_run_on_the_server(server, local, mode):
    remote = Guard.from_server(server.base_url, server.alias, policy=ANNOTATE, mode=mode)
    own = Guard(local.backend, policy=ANNOTATE, mode=mode)  # the same model in process
    verdict, expected = remote.check(PROMPT), own.check(PROMPT)
    assert verdict.labels == expected.labels and verdict.error is None
    assert verdict.scores["prompt_harm"] == pytest.approx(expected.scores["prompt_harm"], abs=1e-4)
    remote.close()


def test_without_logprobs_verdicts_have_no_scores_and_say_why(server, caplog):
    backend = OpenAIServerBackend(server.base_url, server.alias, top_logprobs=0)
    with pytest.raises(BackendError, match="no token probabilities from this server"):
        backend.next_token_probs([PROMPT], [" harmful", " unharmful"])
    with caplog.at_level(logging.WARNING, logger="guardsdk"):
        verdict = Guard(backend, policy=ANNOTATE).check(PROMPT)
    assert verdict.scores == {} and verdict.labels["prompt_harm"] == "unharmful"  # decided by its reasoning
    assert "carry no scores (top_logprobs=0)" in caplog.text


def test_both_logprobs_shapes_are_read():
    legacy = {"logprobs": {"tokens": [" harmful"], "top_logprobs": [{" harmful": -0.1, " unharmful": -2.5}]}}
    chat = {
        "logprobs": {
            "content": [
                {
                    "token": " harmful",
                    "logprob": -0.1,
                    "top_logprobs": [{"token": " harmful", "logprob": -0.1}, {"token": " unharmful", "logprob": -2.5}],
                }
            ]
        }
    }  # llama.cpp server
    assert reply_steps(legacy) == reply_steps(chat) and reply_steps(chat)[0].top[" unharmful"] == -2.5
    assert reply_steps({"logprobs": None}) is None


def test_logprobs_in_a_reply_mark_the_label_words_for_the_detector():
    """A server that computes logprobs natively (vLLM, llama-server) is asked for them while generating: each step is
    a token named by its text; the steps that wrote a watched word carry its id and both words' log-probabilities."""
    reply = {"logprobs": {"tokens": ["Request", ":", " harmful", "\n"], "top_logprobs": [
        {"Request": -0.1}, {":": -0.1}, {" harmful": -0.2, " unharmful": -1.8}, {"\n": -0.1}]}}  # fmt: skip
    ids, watched = watched_steps(reply_steps(reply), {7: " harmful", 9: " unharmful"})
    assert [int(i) for i in ids] == [-1, -1, 7, -1] and joined(ids[:2]) == "Request:"
    assert watched == {2: {7: -0.2, 9: -1.8}}
