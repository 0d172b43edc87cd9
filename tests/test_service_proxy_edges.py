"""The proxy's edges: ``/v1/models`` forwarded to the upstream, OpenAI-shaped 404s for routes it does not serve, the
stream hold-back size, and the refusal text at the end of a stream cut under ``on_block="refusal"``.

Upstreams: a real llama_cpp.server (the bundled guardreasoner-tiny GGUF) and the tests' scripted OpenAI-compatible
server; the guard is the real bundled classifier (with the response threshold of tests/test_service_proxy.py)."""

from __future__ import annotations

import httpx
import openai
import pytest
from servers import LiveService, LlamaCppServer, ScriptedLLMServer, chat_chunk
from test_service_proxy import BOMB, STORY, STORY_REQUEST

from guardsdk import Guard, Policy
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.service import ServiceConfig, create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guard():
    guard = Guard(family="classifier", policy=Policy(thresholds={"response_harm": 0.9}))
    yield guard
    guard.close()


def served(guard: Guard, upstream: str | None, **config) -> LiveService:
    return LiveService(create_app(guard.with_policy(guard.policy), ServiceConfig(upstream=upstream, **config)))


def streaming(text: str) -> ScriptedLLMServer:
    """An upstream that streams ``text``, a word a chunk."""
    return ScriptedLLMServer(lambda body: [chat_chunk({"content": word + " "}) for word in text.split(" ")])


def test_models_are_the_upstreams_and_other_routes_are_openai_404s(guard):
    llm = LlamaCppServer(bundled_tiny_path(), alias="llm")
    try:
        with served(guard, llm.base_url) as live, served(guard, None) as alone:
            client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused")
            assert [m.id for m in client.models.list()] == ["llm"]
            with pytest.raises(openai.NotFoundError) as raised:
                client.embeddings.create(model="llm", input="hello")
            assert raised.value.code == "not_found"
            for method, path in (("POST", "/v1/responses"), ("GET", "/nowhere"), ("GET", "/v1/check")):
                answer = httpx.request(method, live.url + path, json={})
                error = answer.json()["error"]
                assert answer.status_code == (405 if path == "/v1/check" else 404)
                assert error["code"] in ("not_found", "method_not_allowed") and error["type"] and error["message"]
            without = httpx.get(alone.url + "/v1/models")
            assert without.status_code == 404 and without.json()["error"]["code"] == "no_upstream"
    finally:
        llm.stop()


def test_the_hold_back_size_sets_how_often_a_stream_is_checked(guard):
    upstream = streaming(STORY)
    try:
        counts = []
        for size in (None, 200):
            with served(guard, upstream.base_url, stream_holdback_chars=size) as live:
                client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused")
                chunks = list(client.chat.completions.create(model="llm", stream=True, messages=STORY_REQUEST))
            text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
            assert text.strip() == STORY.strip()
            counts.append(len(chunks[-1].model_extra["guardsdk"]["verdicts"]))
        # the prompt's check, the window checks, the final check
        assert counts[0] == 1 + len(STORY) // 600 + 1 and counts[1] >= 1 + len(STORY) // 200 + 1
    finally:
        upstream.stop()
    for size in (0, 199, True):  # under the smallest hold-back, or no integer
        with pytest.raises(ValueError):
            ServiceConfig(stream_holdback_chars=size)


def test_a_stream_cut_under_refusal_ends_with_the_refusal_text(guard):
    upstream = streaming(STORY + BOMB)
    try:
        with served(guard, upstream.base_url, on_block="refusal", refusal="No can do.") as live:
            client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused")
            chunks = list(client.chat.completions.create(model="llm", stream=True, messages=STORY_REQUEST))
    finally:
        upstream.stop()
    text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
    assert text.endswith("No can do.") and "pipe" not in text
    assert chunks[-2].choices[0].finish_reason == "content_filter" and chunks[-1].model_extra["guardsdk"]["blocked"]
