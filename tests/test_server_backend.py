"""The OpenAI-compatible backend against real servers on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from servers import CompletionsServer, LlamaCppServer, completion, error

from guardsdk import Guard, GuardBlocked, Policy
from guardsdk.backends.llamacpp import LlamaCppBackend
from guardsdk.backends.openai_server import OpenAIServerBackend
from guardsdk.families.guardreasoner.template import build_input

ANSWER = (
    "# Task 1\n\n## Reasoning Step 1\nA greeting.\n\n---\n\n"
    "Answers: \nRequest: unharmful\nCompletion: None\nResponse: None\n"
)


@pytest.fixture(scope="module")
def llama_server(tiny_gguf):
    server = LlamaCppServer(tiny_gguf)
    yield server
    server.stop()


@pytest.mark.slow
def test_llama_cpp_server_matches_in_process_llama_cpp(llama_server, tiny_gguf):
    inputs = [build_input("How do I bake bread?"), build_input("Tell me a joke", "Why did the chicken cross the road?")]
    remote = OpenAIServerBackend(llama_server.base_url, llama_server.alias)
    local = LlamaCppBackend(tiny_gguf, n_ctx=4096)
    try:
        over_http = remote.generate(inputs, max_tokens=24)
        in_process = local.generate(inputs, max_tokens=24)
    finally:
        local.close()
        remote.close()
    for a, b in zip(over_http, in_process, strict=True):
        # Random tokens can split UTF-8 characters: the server drops such bytes, we show U+FFFD.
        assert a.text == b.text.replace("\ufffd", "")
        assert a.completion_tokens == b.completion_tokens == 24 and a.finish_reason == "length"
        assert a.prompt_tokens == b.prompt_tokens


@pytest.mark.slow
async def test_guard_from_server_end_to_end(llama_server):
    guard = Guard.from_server(llama_server.base_url, llama_server.alias, max_new_tokens=16)
    with pytest.raises(GuardBlocked) as caught:  # a random model gives no answers: fail closed
        guard.check("Hello there")
    assert caught.value.verdict.tokens_out == 16 and caught.value.verdict.model == "tiny"
    verdicts = await guard.acheck_batch(["one", ("two", "three")])
    assert [v.tokens_out for v in verdicts] == [16, 16] and not any(v.allowed for v in verdicts)


def scripted(replies: list):
    """A server that answers with ``replies`` in order, then keeps answering the last one."""
    queue = list(replies)
    return CompletionsServer(lambda prompt: queue.pop(0) if len(queue) > 1 else queue[0])


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_429_and_5xx_then_succeeds(status):
    server = scripted([error(status, "busy"), error(status, "busy"), (200, completion(ANSWER))])
    try:
        backend = OpenAIServerBackend(server.base_url, "m", backoff_s=0.01)
        result = backend.generate([build_input("hi")], max_tokens=8)[0]
        assert result.text == ANSWER and len(server.requests) == 3
        assert server.requests[0]["temperature"] == 0.0 and server.requests[0]["prompt"] == build_input("hi")
        assert server.requests[0]["repeat_penalty"] == 1.0 and server.requests[0]["max_tokens"] == 8
    finally:
        server.stop()


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_fail_at_once(status):
    server = scripted([error(status, "no"), (200, completion(ANSWER))])
    try:
        backend = OpenAIServerBackend(server.base_url, "m", backoff_s=0.01)
        [generation] = backend.generate([build_input("hi")], max_tokens=8)
        assert generation.finish_reason == "error" and str(status) in generation.error
        assert len(server.requests) == 1
    finally:
        server.stop()


async def test_retries_give_up_and_the_guard_fails_closed():
    server = scripted([error(503, "down")])
    try:
        guard = Guard.from_server(server.base_url, "m", backend_kwargs={"backoff_s": 0.01, "max_retries": 2})
        with pytest.raises(GuardBlocked) as caught:
            await guard.acheck("hi")
        assert "503" in caught.value.verdict.error and len(server.requests) == 3
    finally:
        server.stop()


def test_connection_refused_is_retried_then_undecided():
    from servers import free_port

    guard = Guard.from_server(
        f"http://127.0.0.1:{free_port()}/v1",
        "m",
        policy=Policy(on_undecided="fail_open"),
        backend_kwargs={"backoff_s": 0.01, "max_retries": 1, "timeout_s": 2},
    )
    verdict = guard.check("hi")
    assert verdict.allowed and verdict.decision.fail_open and "APIConnectionError" in verdict.error


def test_slow_server_times_out():
    def slow(prompt: str):
        time.sleep(1.5)
        return 200, completion(ANSWER)

    server = CompletionsServer(slow)
    try:
        backend = OpenAIServerBackend(server.base_url, "m", timeout_s=0.3, max_retries=0)
        started = time.monotonic()
        [generation] = backend.generate([build_input("hi")], max_tokens=8)
        assert generation.finish_reason == "timeout" and time.monotonic() - started < 1.0
    finally:
        server.stop()


def test_server_answers_become_verdicts():
    server = CompletionsServer(lambda prompt: (200, completion(ANSWER)))
    try:
        verdict = Guard.from_server(server.base_url, "m").check("hello")
        assert verdict.allowed and verdict.prompt_harmful is False and verdict.tokens_in == 100
    finally:
        server.stop()


def test_sync_batches_run_concurrently_and_keep_order():
    import threading
    import time

    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def answer(prompt: str):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return 200, completion(prompt[-12:])

    server = CompletionsServer(answer)
    try:
        backend = OpenAIServerBackend(server.base_url, "m", max_concurrency=4)
        inputs = [build_input(f"prompt number {i}") for i in range(8)]
        results = backend.generate(inputs, max_tokens=4)
        assert [r.text for r in results] == [text[-12:] for text in inputs]
        assert state["peak"] >= 2
    finally:
        server.stop()
