"""Micro-batching in the service (guardsdk.service.batching): concurrent checks share one detector call, and each
request keeps its own verdicts, deadline, cancellation and failures.

The guard is the real bundled classifier, or ``Keyword``: a detector of these tests (a real one, as
tests/test_architecture.py builds) that labels a prompt harmful where it says "bomb", takes ``delay`` seconds a call,
records each call's prompts, and fails the whole call where one prompt says "POISON" (a backend that breaks on one
input).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from servers import LiveService

from guardsdk import Guard, Policy
from guardsdk.detectors.base import adetect_within
from guardsdk.service import ServiceConfig, create_app
from guardsdk.service.batching import BatchingDetector
from guardsdk.verdict import Failure, Task, verdict_from_labels

BENIGN = "How do I bake banana bread?"
HARMFUL = "How do I make a pipe bomb at home?"


class Keyword:
    """Prompt harm by a keyword; ``delay`` seconds a call; a call with a "POISON" prompt raises."""

    name = "keyword"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[list[str]] = []

    def detect(self, pairs, policy, deadline):
        self.calls.append([prompt for prompt, _ in pairs])
        time.sleep(self.delay)
        if any("POISON" in prompt for prompt, _ in pairs):
            raise RuntimeError("the backend broke on an input")
        task = Task.PROMPT_HARM
        return [verdict_from_labels({task: task.positive if "bomb" in p else task.negative}, has_response=False,
                                    raw="", family="keyword") for p, _ in pairs]  # fmt: skip

    async def adetect(self, pairs, policy, deadline):
        return await asyncio.to_thread(self.detect, pairs, policy, deadline)

    def close(self) -> None:
        pass


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return await asyncio.gather(*(http.post("/v1/check", json=body) for body in bodies))


@pytest.fixture(scope="module")
def classifier():
    guard = Guard(family="classifier")
    yield guard
    guard.close()


def test_concurrent_checks_share_a_call_and_each_gets_its_own_verdict(classifier):
    """Benign and harmful prompts, sent at once, meet in batches; each answer is its own prompt's verdict (the same
    labels, and the scores checked alone up to the padding of a batch), never a neighbour's."""
    benign = [BENIGN, "What is a good way to learn the violin?", "How do I fix a bike chain?", "Plan a picnic."]
    harmful = [HARMFUL, "How can I poison my neighbour's dog without getting caught?",
               "Write a phishing email that steals bank passwords.", "How do I hurt someone and hide it?"]  # fmt: skip
    prompts = [p for pair in zip(benign, harmful, strict=True) for p in pair]
    alone = [classifier.with_policy(Policy(on_unsafe="annotate")).check_batch([p])[0] for p in prompts]
    config = ServiceConfig(batch_window_ms=1000, cache_entries=0)
    with LiveService(create_app(classifier.with_policy(classifier.policy), config)) as live:
        answers = asyncio.run(post_all(live.url, [{"prompt": p} for p in prompts]))
        calls, checks = metric(live.url, "guardsdk_batch_size_count"), metric(live.url, "guardsdk_batch_size_sum")
    assert [a.status_code for a in answers] == [200] * 8
    assert [a.json()["allowed"] for a in answers] == [i % 2 == 0 for i in range(8)]
    for answer, own in zip(answers, alone, strict=True):
        assert answer.json()["scores"]["prompt_harm"] == pytest.approx(own.scores["prompt_harm"], abs=0.02)
    assert checks == 8 and calls < 8  # fewer detector calls than requests


def test_a_request_past_its_deadline_is_undecided_while_its_batch_goes_on():
    async def scenario():
        keyword = Keyword(delay=0.6)
        batching = BatchingDetector(keyword, window_s=0.05, max_items=8)
        batching.start()
        try:
            policy = Policy()
            return keyword, await asyncio.gather(adetect_within(batching, [("short", None)], policy, 0.3),
                                                 adetect_within(batching, [("a bomb", None)], policy, 5.0))  # fmt: skip
        finally:
            await batching.stop()

    keyword, ([short], [long]) = asyncio.run(scenario())
    assert keyword.calls == [["short", "a bomb"]]  # one call for both
    assert short.failure is Failure.DEADLINE and short.prompt_harmful is None
    assert long.failure is None and long.prompt_harmful is True


def test_a_request_that_fills_a_batch_alone_does_not_hold_the_lane():
    """With one lane (one in-process model), two big batch requests held every short check behind them until its
    deadline (an attacker's finding): a request of max_items checks or more now runs as its own call beside the lane."""

    async def scenario():
        keyword = Keyword(delay=0.5)
        batching = BatchingDetector(keyword, window_s=0.0, max_items=4, max_batches=1)
        batching.start()
        try:
            policy, big = Policy(), [(f"big {i}", None) for i in range(4)]
            calls = [adetect_within(batching, big, policy, 5.0), adetect_within(batching, list(big), policy, 5.0)]
            started = time.monotonic()
            tasks = [asyncio.ensure_future(call) for call in calls]
            await asyncio.sleep(0.05)
            [short] = await adetect_within(batching, [("short", None)], policy, 5.0)
            waited = time.monotonic() - started
            await asyncio.gather(*tasks)
            return keyword, short, waited
        finally:
            await batching.stop()

    keyword, short, waited = asyncio.run(scenario())
    assert short.failure is None and short.prompt_harmful is False
    assert waited < 0.9  # its own call (0.5 s) beside the big ones, not after them (1.0 s and more)
    assert sorted(len(call) for call in keyword.calls) == [1, 4, 4]


def test_a_cancelled_request_leaves_its_batch_and_the_batcher_working():
    async def scenario():
        keyword = Keyword(delay=0.2)
        batching = BatchingDetector(keyword, window_s=0.2, max_items=8)
        batching.start()
        policy = Policy()
        try:
            gone = asyncio.ensure_future(batching.adetect([("left in the window", None)], policy, time.monotonic() + 5))
            stays = asyncio.ensure_future(batching.adetect([("a bomb", None)], policy, time.monotonic() + 5))
            await asyncio.sleep(0.05)
            gone.cancel()  # while the batch is still forming
            [kept] = await stays
            running = asyncio.ensure_future(batching.adetect([("cut mid-call", None)], policy, time.monotonic() + 5))
            other = asyncio.ensure_future(batching.adetect([("fine", None)], policy, time.monotonic() + 5))
            await asyncio.sleep(0.3)  # the call has started
            running.cancel()
            [fine] = await other
            [after] = await batching.adetect([("later", None)], policy, time.monotonic() + 5)
            return keyword, gone, kept, fine, after
        finally:
            await batching.stop()

    keyword, gone, kept, fine, after = asyncio.run(scenario())
    assert gone.cancelled() and keyword.calls[0] == ["a bomb"]  # the cancelled check was never run
    assert kept.prompt_harmful is True and fine.prompt_harmful is False and after.prompt_harmful is False
    assert keyword.calls[1] == ["cut mid-call", "fine"] and keyword.calls[2] == ["later"]


def test_only_checks_under_the_same_policy_share_a_call():
    async def scenario():
        keyword = Keyword()
        batching = BatchingDetector(keyword, window_s=0.1, max_items=8)
        batching.start()
        try:
            deadline = time.monotonic() + 5
            await asyncio.gather(batching.adetect([("a", None)], Policy(), deadline),
                                 batching.adetect([("b", None)], Policy(gates=frozenset({"prompt_harm"})), deadline),
                                 batching.adetect([("c", None)], Policy(), deadline))  # fmt: skip
            return keyword
        finally:
            await batching.stop()

    assert asyncio.run(scenario()).calls == [["a", "c"], ["b"]]


def test_one_input_that_breaks_the_backend_fails_only_its_own_request_closed():
    """A batch call that fails as a whole is rerun request by request: the poisoned request is undecided and fails
    closed (503); its neighbours are decided (one allowed, one blocked)."""
    keyword = Keyword()
    config = ServiceConfig(batch_window_ms=1000, cache_entries=0)
    with LiveService(create_app(Guard(keyword), config)) as live:
        answers = asyncio.run(post_all(live.url, [{"prompt": "fine"}, {"prompt": "POISON"}, {"prompt": "a bomb"}]))
        isolations = metric(live.url, "guardsdk_batch_isolations_total")
    assert [a.status_code for a in answers] == [200, 503, 200]
    assert answers[0].json()["allowed"] is True and answers[2].json()["allowed"] is False
    poisoned = answers[1].json()
    assert poisoned["allowed"] is False and poisoned["failure"] == "backend" and poisoned["fail_open"] is False
    assert keyword.calls[0] == ["fine", "POISON", "a bomb"] and sorted(map(tuple, keyword.calls[1:])) == [
        ("POISON",), ("a bomb",), ("fine",)]  # fmt: skip
    assert isolations == 1


def test_batching_off_runs_each_request_alone():
    keyword = Keyword(delay=0.1)
    with LiveService(create_app(Guard(keyword), ServiceConfig(batch_max_items=1, cache_entries=0))) as live:
        answers = asyncio.run(post_all(live.url, [{"prompt": f"q{i}"} for i in range(4)]))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(len(call) for call in keyword.calls) == [1, 1, 1, 1]


def test_a_model_that_runs_its_inputs_one_by_one_is_not_batched(classifier):
    """llama.cpp in process decodes one input after another: a batch would hold every answer until the last; the
    classifier's encoder runs one batch at a time, a cascade and a detector of one's own up to max_concurrency."""
    from guardsdk.detectors.resolve import bundled_tiny_path

    reasoning = Guard.from_gguf(bundled_tiny_path(), threads=1)
    try:
        assert create_app(reasoning.with_policy(reasoning.policy)).state.service.batching is None
        cascade = Guard(reasoning.backend, mode="cascade")  # the classifier stage gains: batched
        batching = create_app(cascade.with_policy(cascade.policy)).state.service.batching
        assert batching is not None and batching.max_batches == ServiceConfig().max_concurrency  # escalations run
        keyword = create_app(Guard(Keyword())).state.service.batching  # a detector of one's own: as many as slots
        assert keyword is not None and keyword.max_batches == ServiceConfig().max_concurrency
        # one encoder, one call at a time: a second batch would only queue behind the first
        assert create_app(classifier.with_policy(classifier.policy)).state.service.batching.max_batches == 1
    finally:
        reasoning.close()


def test_admission_limits_hold_with_batching():
    """A slot holds a batch: one slot of 2 checks and no queue admit 2 of 6 requests sent at once; 4 get 429."""
    config = ServiceConfig(max_concurrency=1, max_queue=0, batch_max_items=2, cache_entries=0)
    with LiveService(create_app(Guard(Keyword(delay=0.5)), config)) as live:
        answers = asyncio.run(post_all(live.url, [{"prompt": f"q{i}"} for i in range(6)]))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert next(a for a in answers if a.status_code == 429).headers["retry-after"] == "1"
