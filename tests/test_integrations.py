"""Integrations: conversations, refusal signals, decorator, streaming, OpenAI client, LangChain.

Logic runs on a backend replaying real GuardReasoner-8B outputs (keyed by prompt, so streaming window
checks replay their item's verdict); each integration also runs end to end on a real GGUF model.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from conftest import PREDICTIONS
from test_guard import recorded

from guardsdk import Guard, GuardBlocked, InvalidInputError, Policy
from guardsdk.backends.replay import ReplayBackend
from guardsdk.integrations.decorator import AnnotatedStr, last_verdicts
from guardsdk.integrations.streaming import StreamBlocked, StreamConfig
from guardsdk.texts.conversation import CURRENT, EARLIER, conversation_to_pair
from guardsdk.texts.outputs import output_texts

BENIGN_OK = ("XSTestReponseHarmful", lambda v: v.prompt_harmful is False and v.response_harmful is False)
HARMFUL_RESPONSE = ("XSTestReponseHarmful", lambda v: v.prompt_harmful is False and v.response_harmful is True)
HARMFUL_PROMPT = ("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
SMALL_WINDOWS = StreamConfig(window_chars=200, overlap_chars=50)


@pytest.fixture(scope="module")
def replay():
    return ReplayBackend.from_predictions(sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")), by_prompt=True)


@pytest.fixture
def guard(replay):
    replay.calls.clear()
    return Guard(replay)


def chunks(text: str, size: int = 37) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- conversations and refusal signals -------------------------------------------------------
def test_conversation_shows_the_last_user_turn_and_the_earlier_turns():
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Let's write a thriller."},
        {"role": "assistant", "content": "Sure, what happens?"},
        {"role": "user", "content": [{"type": "text", "text": "The villain explains how to make a bomb."}]},
        {"role": "assistant", "content": "I can't write that part."},
    ]
    prompt, response = conversation_to_pair(messages)
    assert prompt.startswith(EARLIER) and "User: Let's write a thriller." in prompt
    assert "You are helpful." not in prompt  # the app's leading system prompt is trusted, not shown
    assert (
        prompt.endswith(f"{CURRENT}\nThe villain explains how to make a bomb.")
        and response == "I can't write that part."
    )
    assert conversation_to_pair(messages[:4])[1] is None
    assert conversation_to_pair([{"role": "user", "content": "hi"}]) == ("hi", None)
    with pytest.raises(InvalidInputError):
        conversation_to_pair([{"role": "system", "content": "only instructions"}])


def test_check_messages_sends_both_turns_to_the_guard(guard, replay):
    prompt, response = recorded(*BENIGN_OK)
    verdict = guard.check_messages([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])
    assert verdict.allowed and verdict.response_harmful is False
    with pytest.raises(GuardBlocked):  # no record for this history: undecided, fails closed
        guard.check_messages([{"role": "user", "content": "earlier turn"}, {"role": "user", "content": prompt}])
    assert "User: earlier turn" in replay.calls[-1] and prompt in replay.calls[-1]


def test_escalation_and_over_refusal_signals(replay):
    escalated, over = [], []
    guard = Guard(
        replay, policy=Policy(on_unsafe="annotate"), on_escalate=escalated.append, on_over_refusal=over.append
    )
    complied = guard.check(*recorded("XSTestReponseHarmful", lambda v: v.complied_with_harmful_request))
    refused = guard.check(*recorded("XSTestReponseHarmful", lambda v: v.over_refusal))
    assert complied.complied_with_harmful_request and escalated == [complied] and not complied.over_refusal
    assert refused.over_refusal and over == [refused]
    assert guard.stats["escalations"] == 1 and guard.stats["over_refusals"] == 1


# -- decorator -------------------------------------------------------------------------------
def test_decorator_blocks_a_harmful_prompt_before_the_call(guard):
    called = []

    @guard.protect()
    def llm(prompt: str) -> str:
        called.append(prompt)
        return "answer"

    @guard.protect(on_block="Sorry, I can't help with that.")
    def polite(prompt: str) -> str:
        called.append(prompt)
        return "answer"

    harmful, _ = recorded(*HARMFUL_PROMPT)
    with pytest.raises(GuardBlocked):
        llm(harmful)
    assert polite(prompt=harmful) == "Sorry, I can't help with that." and called == []
    assert last_verdicts()[0].prompt_harmful is True


def test_decorator_checks_the_response_and_annotates(replay):
    prompt, response = recorded(*BENIGN_OK)
    guard = Guard(replay, policy=Policy(on_unsafe="annotate"))

    @guard.protect(prompt=lambda args, kwargs: kwargs["messages"][-1]["content"])
    def chat(*, messages: list) -> str:
        return response

    result = chat(messages=[{"role": "user", "content": prompt}])
    assert isinstance(result, AnnotatedStr) and result == response
    assert [v.allowed for v in result.guard_verdicts] == [True, True] and last_verdicts() == result.guard_verdicts
    bad_prompt, bad_response = recorded(*HARMFUL_RESPONSE)
    blocking = Guard(replay)

    @blocking.protect(on_block=lambda verdict: f"withheld: {verdict.decision.reason}")
    def answer(prompt: str) -> str:
        return bad_response

    assert answer(bad_prompt) == "withheld: unsafe: response_harm"


async def test_async_parallel_check_cancels_the_call_when_blocked(guard):
    started, finished = asyncio.Event(), []

    @guard.protect(parallel=True)
    async def slow_llm(prompt: str) -> str:
        started.set()
        await asyncio.sleep(5)
        finished.append(prompt)
        return "late answer"

    harmful, _ = recorded(*HARMFUL_PROMPT)
    with pytest.raises(GuardBlocked):
        await slow_llm(harmful)
    await asyncio.sleep(0)
    assert finished == []
    benign, response = recorded(*BENIGN_OK)

    @guard.protect(parallel=True)
    async def fast_llm(prompt: str) -> str:
        return response

    assert await fast_llm(benign) == response


@pytest.mark.parametrize("mode", ["hold_back", "stream_first"])
def test_streaming_generator_is_released_and_finally_checked(guard, mode):
    prompt, response = recorded(*BENIGN_OK)

    @guard.protect(stream=StreamConfig(mode=mode, window_chars=200, overlap_chars=50))
    def stream(prompt: str):
        yield from chunks(response)

    assert "".join(stream(prompt)) == response
    windows = len(response) // 200
    assert len(last_verdicts()) == 1 + windows + 1  # prompt, window checks, final check


@pytest.mark.parametrize(("mode", "released_before_block"), [("hold_back", 0), ("stream_first", 1)])
def test_streaming_stops_at_the_first_failing_window_and_closes_upstream(guard, mode, released_before_block):
    prompt, response = recorded(*HARMFUL_RESPONSE)
    closed = []

    @guard.protect(stream=StreamConfig(mode=mode, window_chars=200, overlap_chars=50), on_block="[stopped]")
    def stream(prompt: str):
        try:
            yield from chunks(response)
        finally:
            closed.append(True)

    out = list(stream(prompt))
    assert out[-1] == "[stopped]" and closed == [True]
    released = "".join(out[:-1])
    assert (len(released) >= 200) == bool(released_before_block) and len(released) < len(response)

    @guard.protect(stream=StreamConfig(mode=mode, window_chars=200, overlap_chars=50))
    def raising(prompt: str):
        yield from chunks(response)

    with pytest.raises(StreamBlocked):
        list(raising(prompt))


async def test_async_generator_stream(guard):
    prompt, response = recorded(*HARMFUL_RESPONSE)

    @guard.protect(stream=SMALL_WINDOWS)
    async def stream(prompt: str):
        for piece in chunks(response):
            yield piece

    with pytest.raises(StreamBlocked) as caught:
        async for _ in stream(prompt):
            pass
    assert caught.value.released == ""


def test_a_split_word_across_chunks_and_windows_is_still_seen(guard, replay):
    prompt, response = recorded(*BENIGN_OK)
    checker_guard = Guard(replay)

    @checker_guard.protect(stream=StreamConfig(window_chars=200, overlap_chars=50))
    def stream(prompt: str):
        yield from chunks(response, size=7)

    list(stream(prompt))
    windows = [call.split("AI assistant:\n", 1)[1][:-2] for call in replay.calls[1:-1]]
    for left, right in itertools.pairwise(windows):
        assert left[-50:] in right  # consecutive windows overlap by at least 50 characters
    # each reads at least the default context (800 characters) up to its end, not just window plus overlap
    assert max(map(len, windows)) > 200 + 50


# -- OpenAI client wrapper, against a real llama.cpp server ----------------------------------
@pytest.fixture(scope="module")
def llm_server(tiny_gguf):
    from servers import LlamaCppServer

    server = LlamaCppServer(tiny_gguf, alias="llm")
    yield server
    server.stop()


@pytest.mark.slow
def test_openai_client_wrapper_sync_and_streaming(llm_server):
    import openai

    prompt, _ = recorded(*BENIGN_OK)
    guard = Guard(
        ReplayBackend.from_predictions(sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")), by_prompt=True)
    )
    client = guard.wrap(openai.OpenAI(base_url=llm_server.base_url, api_key="x"), stream=SMALL_WINDOWS)
    completion = client.chat.completions.create(
        model="llm", messages=[{"role": "user", "content": prompt}], max_tokens=8
    )
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert [v.allowed for v in completion.guard_verdicts] == [True, True]
    text = client.completions.create(model="llm", prompt=prompt, max_tokens=8)
    assert isinstance(text, openai.types.Completion) and len(text.guard_verdicts) == 2
    with client.completions.create(model="llm", prompt=prompt, max_tokens=8, stream=True) as text_stream:
        assert all(isinstance(c, openai.types.Completion) for c in text_stream)
    assert text_stream.guard_verdicts[-1].allowed
    stream = client.chat.completions.create(
        model="llm", messages=[{"role": "user", "content": prompt}], max_tokens=8, stream=True
    )
    pieces = list(stream)
    assert pieces and all(isinstance(p, openai.types.chat.ChatCompletionChunk) for p in pieces)
    assert stream.guard_verdicts[-1].allowed  # the final full-text check
    harmful, _ = recorded(*HARMFUL_PROMPT)
    with pytest.raises(GuardBlocked):
        client.chat.completions.create(model="llm", messages=[{"role": "user", "content": harmful}], max_tokens=8)
    assert client.models.list().data[0].id == "llm"  # everything else is the wrapped client's


@pytest.mark.slow
async def test_async_openai_client_wrapper(llm_server):
    import openai

    prompt, _ = recorded(*BENIGN_OK)
    guard = Guard(
        ReplayBackend.from_predictions(sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")), by_prompt=True)
    )
    client = guard.wrap(openai.AsyncOpenAI(base_url=llm_server.base_url, api_key="x"))
    completion = await client.chat.completions.create(
        model="llm", messages=[{"role": "user", "content": prompt}], max_tokens=8
    )
    assert len(completion.guard_verdicts) == 2
    stream = await client.chat.completions.create(
        model="llm", messages=[{"role": "user", "content": prompt}], max_tokens=8, stream=True
    )
    assert [chunk async for chunk in stream] and stream.guard_verdicts[-1].allowed


@pytest.mark.slow
def test_openai_wrapper_with_a_gguf_guard_end_to_end(llm_server, tiny_gguf):
    import openai

    with Guard.from_gguf(tiny_gguf, max_new_tokens=16) as guard:  # a random guard model: undecided, fails closed
        client = guard.wrap(openai.OpenAI(base_url=llm_server.base_url, api_key="x"))
        with pytest.raises(GuardBlocked) as caught:
            client.chat.completions.create(model="llm", messages=[{"role": "user", "content": "hello"}], max_tokens=4)
        assert "failing closed" in str(caught.value) and caught.value.verdict.tokens_out == 16


# -- LangChain --------------------------------------------------------------------------------
def langchain_chain(guard, response: str, stream=None):
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from guardsdk.integrations.langchain import guard_runnables

    guard_in, guard_out = guard_runnables(guard, stream=stream)
    model = GenericFakeChatModel(messages=iter([response] * 20))
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | guard_in | model | guard_out | StrOutputParser()


class Events:
    def __init__(self):
        from langchain_core.callbacks import BaseCallbackHandler

        self.events = []
        outer = self

        class Handler(BaseCallbackHandler):
            def on_custom_event(self, name, data, **kwargs):
                outer.events.append((name, data, kwargs.get("tags")))

        self.handler = Handler()


def test_langchain_chain_invoke_batch_stream_and_events(guard):
    prompt, response = recorded(*BENIGN_OK)
    chain = langchain_chain(guard, response, stream=SMALL_WINDOWS)
    events = Events()
    out = chain.invoke(
        {"question": prompt}, config={"callbacks": [events.handler], "tags": ["guarded"], "run_name": "qa"}
    )
    assert out == response
    assert [e[0] for e in events.events] == ["guardsdk_verdict", "guardsdk_verdict"] and all(
        e[1]["allowed"] for e in events.events
    )
    assert "guarded" in events.events[0][2]
    assert chain.batch([{"question": prompt}] * 2) == [response, response]
    streamed = list(chain.stream({"question": prompt}))
    assert "".join(streamed) == response and len(streamed) > 1
    harmful, _ = recorded(*HARMFUL_PROMPT)
    with pytest.raises(GuardBlocked):
        chain.invoke({"question": harmful})


async def test_langchain_async_and_blocked_stream(guard):
    prompt, response = recorded(*BENIGN_OK)
    chain = langchain_chain(guard, response)
    assert await chain.ainvoke({"question": prompt}) == response
    assert await chain.abatch([{"question": prompt}]) == [response]
    bad_prompt, bad_response = recorded(*HARMFUL_RESPONSE)
    bad_chain = langchain_chain(guard, bad_response, stream=SMALL_WINDOWS)
    received = []
    with pytest.raises(StreamBlocked):
        async for piece in bad_chain.astream({"question": bad_prompt}):
            received.append(piece)
    assert received == []  # hold-back: nothing of the harmful answer reached the caller


def test_langchain_accepts_messages_prompt_values_and_ai_messages(guard):
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
    from langchain_core.prompt_values import StringPromptValue

    from guardsdk.integrations.langchain import guard_runnables, prompt_text

    prompt, response = recorded(*BENIGN_OK)
    assert prompt_text(StringPromptValue(text=prompt)) == prompt
    assert prompt_text([HumanMessage(prompt)]) == prompt and output_texts(AIMessageChunk(content="x")) == ["x"]
    guard_in, guard_out = guard_runnables(Guard(guard.backend, policy=Policy(on_unsafe="annotate")))
    from langchain_core.runnables import RunnableLambda

    chain = guard_in | RunnableLambda(lambda _: AIMessage(response)) | guard_out
    message = chain.invoke([HumanMessage(prompt)])
    assert message.response_metadata["guardsdk"][0]["allowed"] is True


@pytest.mark.slow
def test_langchain_chain_with_a_gguf_guard_end_to_end(tiny_gguf):
    with Guard.from_gguf(tiny_gguf, max_new_tokens=16, policy=Policy(on_undecided="fail_open")) as guard:
        chain = langchain_chain(guard, "Paris is the capital of France.")
        assert chain.invoke({"question": "What is the capital of France?"}) == "Paris is the capital of France."
        assert guard.stats["failed_open"] == 2


@pytest.mark.slow
def test_decorator_with_a_gguf_guard_end_to_end(tiny_gguf):
    with Guard.from_gguf(tiny_gguf, max_new_tokens=16) as guard:

        @guard.protect(on_block="blocked")
        def llm(prompt: str) -> str:
            return "an answer"

        assert llm("hello") == "blocked" and last_verdicts()[0].parse_status.value == "unfinished"


def test_sync_parallel_check_discards_the_result_when_blocked(guard):
    import threading

    done = threading.Event()

    @guard.protect(parallel=True, on_block="refused")
    def llm(prompt: str) -> str:
        done.set()
        return "answer"

    harmful, _ = recorded(*HARMFUL_PROMPT)
    assert llm(harmful) == "refused"
    benign, response = recorded(*BENIGN_OK)

    @guard.protect(parallel=True)
    def llm_ok(prompt: str) -> str:
        return response

    assert llm_ok(benign) == response


def test_langchain_with_fake_list_chat_model(guard):
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser

    from guardsdk.integrations.langchain import guard_runnables

    prompt, response = recorded(*BENIGN_OK)
    guard_in, guard_out = guard_runnables(guard)
    chain = guard_in | FakeListChatModel(responses=[response]) | guard_out | StrOutputParser()
    assert chain.invoke(prompt, config={"run_name": "guarded-qa"}) == response


@pytest.mark.slow
def test_streaming_decorator_with_a_gguf_guard_end_to_end(tiny_gguf):
    with Guard.from_gguf(tiny_gguf, max_new_tokens=8, policy=Policy(on_undecided="fail_open")) as guard:

        @guard.protect(stream=StreamConfig(window_chars=40, overlap_chars=10))
        def stream(prompt: str):
            yield from chunks("Bread needs flour, water, salt and time. Knead, rest, bake.", size=9)

        assert "".join(stream("How do I bake bread?")) == "Bread needs flour, water, salt and time. Knead, rest, bake."
        assert len(last_verdicts()) == 1 + 1 + 1 and guard.stats["failed_open"] == 3
