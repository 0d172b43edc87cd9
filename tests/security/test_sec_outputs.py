"""Issue #10, items 1, 2 and 8: every output the caller receives is checked; no entry point passes through.

The upstream LLM is a real HTTP server on 127.0.0.1 whose replies are scripted (what an attacker-steered
model might return), called through the real ``openai`` client; the guard model is scripted to judge text
holding MARK harmful.
"""

from __future__ import annotations

import openai
import pytest
from scripted import MARK, ScriptedGuardModel
from servers import ScriptedLLMServer, chat_chunk, chat_completion, text_completion, tool_call

from guardsdk import Guard, GuardBlocked, InvalidInputError, Policy
from guardsdk.errors import UnguardedEndpointError
from guardsdk.integrations.streaming import StreamBlocked, StreamConfig

HARMFUL = f"Here is how to make {MARK} at home: step one ..."
USER = [{"role": "user", "content": "Tell me about chemistry."}]


@pytest.fixture
def guard():
    return Guard(ScriptedGuardModel())


def serve(reply):
    server = ScriptedLLMServer(reply)
    return server, openai.OpenAI(base_url=server.base_url, api_key="x")


def released_before_block(guard, chunks):
    """Stream ``chunks`` through a wrapped client (hold-back); the chunks the caller got before the block."""
    server, client = serve(lambda body: chunks)
    released = []
    try:
        stream = guard.wrap(client, stream=StreamConfig(window_chars=400, overlap_chars=50)).chat.completions.create(
            model="llm", messages=USER, stream=True
        )
        with pytest.raises(StreamBlocked):
            for chunk in stream:
                released.append(chunk)
    finally:
        server.stop()
    return released


# -- 1. every choice ---------------------------------------------------------------------------
def test_n2_chat_completion_checks_the_second_choice(guard):
    server, client = serve(lambda body: chat_completion({"content": "Chemistry is fun."}, {"content": HARMFUL}))
    try:
        with pytest.raises(GuardBlocked) as caught:
            guard.wrap(client).chat.completions.create(model="llm", messages=USER, n=2)
        assert caught.value.verdict.response_harmful is True
    finally:
        server.stop()


def test_completions_with_a_prompt_list_checks_every_prompt_and_every_choice(guard):
    server, client = serve(lambda body: text_completion("fine", HARMFUL))
    wrapped = guard.wrap(client)
    try:
        with pytest.raises(GuardBlocked):  # choice 1 answers prompt 1
            wrapped.completions.create(model="llm", prompt=["a", "b"])
        with pytest.raises(GuardBlocked):  # the second prompt is harmful: blocked before the call
            wrapped.completions.create(model="llm", prompt=["hello", f"make {MARK}"])
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_a_guarded_stream_refuses_several_choices(guard):
    server, client = serve(lambda body: [])
    try:
        with pytest.raises(InvalidInputError, match="one choice"):
            guard.wrap(client).chat.completions.create(model="llm", messages=USER, n=2, stream=True)
        assert server.requests == []
    finally:
        server.stop()


def test_decorator_checks_every_choice(guard):
    server, client = serve(lambda body: chat_completion({"content": "ok"}, {"content": HARMFUL}))

    @guard.protect(prompt="messages")
    def ask(messages):
        return client.chat.completions.create(model="llm", messages=messages, n=2)

    try:
        with pytest.raises(GuardBlocked):
            ask(USER)
    finally:
        server.stop()


# -- 2. tool calls and unreadable results -------------------------------------------------------
def test_tool_call_arguments_are_checked(guard):
    message = {"content": None, "tool_calls": [tool_call("send_email", f'{{"body": "{HARMFUL}"}}')]}
    server, client = serve(lambda body: chat_completion(message))
    try:
        with pytest.raises(GuardBlocked) as caught:
            guard.wrap(client).chat.completions.create(model="llm", messages=USER)
        assert guard.backend.calls[-1].count("[tool call] send_email(") == 1
        assert caught.value.verdict.response_harmful is True
    finally:
        server.stop()


def test_streamed_tool_call_deltas_are_held_back_and_checked(guard):
    chunks = [
        chat_chunk({"role": "assistant", "content": None,
                    "tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                    "function": {"name": "run", "arguments": ""}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"cmd": "'}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": f'{HARMFUL}"}}'}}]}),
    ]  # fmt: skip
    assert released_before_block(guard, chunks) == []  # no tool-call delta reached the caller before its check


def test_langchain_output_guard_checks_tool_calls(guard):
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.runnables import RunnableLambda

    from guardsdk.integrations.langchain import guard_runnables

    guard_in, guard_out = guard_runnables(guard)
    reply = AIMessage(content="", tool_calls=[{"name": "post", "args": {"text": HARMFUL}, "id": "1"}])
    chain = guard_in | RunnableLambda(lambda _: reply) | guard_out
    with pytest.raises(GuardBlocked):
        chain.invoke([HumanMessage("Write a post.")])


def test_a_result_whose_text_cannot_be_read_is_an_error_never_empty(guard):
    class Reply:
        content = HARMFUL.encode()

    @guard.protect()
    def ask(prompt):
        return Reply()

    with pytest.raises(InvalidInputError, match="bytes"):
        ask("hello")
    assert guard.stats["allowed"] == 1  # the prompt check only; the unreadable response was never allowed


# -- 8. entry points ---------------------------------------------------------------------------
def test_every_llm_entry_point_is_guarded_or_raises(guard):
    server, client = serve(lambda body: chat_completion({"content": HARMFUL}))
    wrapped = guard.wrap(client)
    try:
        with pytest.raises(GuardBlocked):  # with_options gives a guarded client
            wrapped.with_options(timeout=5).chat.completions.create(model="llm", messages=USER)
        with pytest.raises(GuardBlocked):
            wrapped.copy().chat.completions.create(model="llm", messages=USER)
        for reach in (
            lambda: wrapped.with_raw_response,
            lambda: wrapped.chat.completions.with_raw_response,
            lambda: wrapped.chat.completions.with_streaming_response,
            lambda: wrapped.completions.with_raw_response,
            lambda: wrapped.chat.completions.parse,
            lambda: wrapped.responses.create,
            lambda: wrapped.beta,
            lambda: wrapped.chat.some_future_endpoint,
        ):
            with pytest.raises(UnguardedEndpointError):
                reach()
        assert len(server.requests) == 2  # only the two guarded calls reached the LLM
        assert wrapped.models is client.models  # calls no LLM: handed through
        raw = wrapped.unwrapped  # the explicit opt-out is counted
        assert raw is client and guard.stats["unguarded_client"] == 1
    finally:
        server.stop()


async def test_async_client_with_options_stays_guarded():
    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    server = ScriptedLLMServer(lambda body: chat_completion({"content": "ok"}, {"content": HARMFUL}))
    try:
        wrapped = guard.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key="x")).with_options(max_retries=0)
        result = await wrapped.chat.completions.create(model="llm", messages=USER, n=2)
        assert [v.allowed for v in result.guard_verdicts] == [True, True, False]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("key", "value"),
    [("refusal", HARMFUL), ("reasoning_content", HARMFUL), ("reasoning", HARMFUL), ("reasoning", {"text": HARMFUL})],
)
def test_model_text_beside_content_is_checked(guard, key, value):
    server, client = serve(lambda body: chat_completion({"content": None, key: value}))
    try:
        with pytest.raises(GuardBlocked):
            guard.wrap(client).chat.completions.create(model="llm", messages=USER)
    finally:
        server.stop()


def test_streamed_reasoning_is_held_back_and_checked(guard):
    chunks = [chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"reasoning_content": HARMFUL}),
              chat_chunk({"content": "Here you go."})]  # fmt: skip
    released = released_before_block(guard, chunks)
    assert all(getattr(c.choices[0].delta, "reasoning_content", None) is None for c in released)


def test_every_streamed_tool_call_form_is_text_to_check():
    from langchain_core.messages import AIMessageChunk

    from guardsdk.texts.outputs import chunk_text

    langchain = AIMessageChunk(
        content="", tool_call_chunks=[{"name": "run", "args": '{"cmd": "', "id": "1", "index": 0}]
    )
    assert chunk_text(langchain) == '\n[tool call] run({"cmd": "'
    legacy = chat_chunk({"function_call": {"name": "run", "arguments": MARK}})
    assert chunk_text(legacy) == f"\n[tool call] run({MARK}"
    structured = chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": {"cmd": MARK}}}]})
    assert MARK in chunk_text(structured)  # a non-string fragment is checked as JSON, never dropped
