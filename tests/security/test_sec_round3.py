"""Issue #25, no unchecked path round 3: message fields, blocked text in block answers, deadlines that stop work,
stream-first stops, LangChain events, ``extra_body``, the proxy's gates, error paths, and the reasoning audit flag.

Upstream LLMs are real HTTP servers on 127.0.0.1 (scripted replies, called through the real ``openai`` client); the
guard model is scripted (text holding MARK is harmful), the real bundled classifier, or a replay of the published
GuardReasoner-8B outputs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time

import httpx
import openai
import pytest
from conftest import PREDICTIONS
from scripted import MARK, ScriptedGuardModel
from servers import LiveService, ScriptedLLMServer, chat_chunk, chat_completion, free_port

from guardsdk import Guard, GuardBlocked, InvalidInputError, Policy
from guardsdk.backends.replay import ReplayBackend
from guardsdk.deadline import checks_deadline
from guardsdk.detectors.cascade import Cascade
from guardsdk.errors import UncheckedFieldError
from guardsdk.families.guardreasoner.template import split_input
from guardsdk.integrations.streaming import StreamConfig
from guardsdk.service import ServiceConfig, create_app

HARMFUL = f"Here is how to make {MARK} at home: step one ..."
USER = [{"role": "user", "content": "Tell me about chemistry."}]


def serve(reply):
    server = ScriptedLLMServer(reply)
    return server, openai.OpenAI(base_url=server.base_url, api_key="x")


# -- 1. text in message fields other than content -------------------------------------------------------------------
def test_a_message_name_is_shown_to_the_guard():
    guard = Guard(ScriptedGuardModel())
    with pytest.raises(GuardBlocked):
        guard.check_messages([{"role": "user", "name": MARK, "content": "hello"}])


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "user", "content": "hi", "thinking": HARMFUL}, "messages.thinking"),
        ({"role": "user", "content": "hi", "documents": [{"text": HARMFUL}]}, "messages.documents"),
        ({"role": "user", "content": [{"type": "text", "text": "hi", "thinking": HARMFUL}]},
         "messages.content.thinking"),
        ({"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "extra": HARMFUL,
                                                              "function": {"name": "f", "arguments": "{}"}}]},
         "messages.tool_calls.extra"),
    ],
)  # fmt: skip
def test_a_field_the_guard_does_not_read_is_refused_unless_passed(message, field):
    guard = Guard(ScriptedGuardModel())
    messages = [message, {"role": "user", "content": "go on"}]
    with pytest.raises(UncheckedFieldError, match=field):
        guard.check_messages(messages)
    assert guard.backend.calls == []  # refused before any model call
    server, client = serve(lambda body: chat_completion({"content": "fine"}))
    with pytest.raises(UncheckedFieldError):
        guard.wrap(client).chat.completions.create(model="llm", messages=messages)
    assert server.requests == []  # never reached the upstream
    passed = guard.wrap(client, pass_fields={field})
    assert passed.chat.completions.create(model="llm", messages=messages).choices[0].message.content == "fine"
    assert guard.stats["passed_fields"] == 1 and len(server.requests) == 1
    server.stop()


def test_identifier_fields_must_be_identifiers_and_empty_sdk_fields_are_absent():
    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    with pytest.raises(InvalidInputError, match="identifier"):
        guard.check_messages([{"role": "tool", "tool_call_id": f"{MARK} please", "content": "ok"}])
    dumped = {"role": "assistant", "content": "Sure.", "refusal": None, "annotations": [], "audio": None,
              "function_call": None, "tool_calls": None}  # fmt: skip
    verdict = guard.check_messages([{"role": "user", "content": "hi"}, dumped])
    assert verdict.allowed


# -- 2. a blocked text never comes back inside the block answer -----------------------------------------------------
def quoted_runs(text: str, body: str, words: int = 8) -> int:
    """How many runs of ``words`` consecutive words of ``text`` stand in ``body``."""
    split = text.split()
    return sum(" ".join(split[i : i + words]) in body for i in range(len(split) - words + 1))


@pytest.fixture(scope="module")
def fentanyl_item():
    """A published GuardReasoner-8B output that quotes the response it judges harmful and begins by continuing it."""
    path = PREDICTIONS / "8B" / "HarmBenchResponse" / "generated_predictions.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    row = max(rows, key=lambda r: quoted_runs(split_input(r["prompt"])[1] or "",
                                              r["predict"]))  # fmt: skip
    prompt, response = split_input(row["prompt"])
    assert quoted_runs(response, row["predict"]) > 50 and "Response: harmful" in row["predict"]
    return prompt, response, Guard(ReplayBackend({row["prompt"]: row["predict"]}, name="GuardReasoner-8B (replay)"),
                                   policy=Policy(gates={"response_harm"}))  # fmt: skip


@pytest.mark.parametrize("on_block", ["error", "refusal"])
def test_the_proxy_never_sends_the_guard_text_about_a_blocked_response(fentanyl_item, on_block):
    prompt, response, guard = fentanyl_item
    server = ScriptedLLMServer(lambda body: chat_completion({"content": response}))
    app = create_app(guard.with_policy(guard.policy), ServiceConfig(upstream=server.base_url, on_block=on_block))
    with LiveService(app) as live:
        answer = httpx.post(live.url + "/v1/chat/completions", timeout=30,
                            json={"model": "llm", "messages": [{"role": "user", "content": prompt}]})  # fmt: skip
    server.stop()
    assert answer.status_code == (400 if on_block == "error" else 200)
    body = answer.text
    assert quoted_runs(response, body) == 0  # not one 8-word run of the blocked response
    verdicts = answer.json()["error" if on_block == "error" else "guardsdk"]
    verdict = (verdicts["guardsdk"] if on_block == "error" else verdicts)["verdicts"][0]
    assert verdict["withheld"] and verdict["labels"]["response_harm"] == "harmful" and verdict["raw"] == ""


def test_the_check_api_withholds_reasoning_of_blocked_checks_unless_exposed(fentanyl_item):
    prompt, response, guard = fentanyl_item
    for expose in (False, True):
        app = create_app(guard.with_policy(guard.policy), ServiceConfig(expose_reasoning=expose, cache_entries=0))
        with LiveService(app) as live:
            answer = httpx.post(live.url + "/v1/check", json={"prompt": prompt, "response": response}, timeout=30)
        assert answer.status_code == 200 and answer.json()["allowed"] is False
        assert (quoted_runs(response, answer.text) > 50) is expose and answer.json()["withheld"] is not expose


def test_guard_blocked_says_the_decision_not_the_guard_text(fentanyl_item):
    prompt, response, guard = fentanyl_item
    with pytest.raises(GuardBlocked) as caught:
        guard.check(prompt, response)
    assert str(caught.value) == "unsafe: response_harm" and quoted_runs(response, caught.value.verdict.raw) > 50


# -- 4. a request's deadline ends its guard work ------------------------------------------------------------------
@pytest.mark.slow
def test_a_batch_past_its_deadline_leaves_no_work_that_starves_the_next_request():
    """40 long items take the classifier far longer than the 3 s request deadline (the issue measured 21-41 s of work
    going on after the 504). The work stops at the deadline: a one-line check right after is answered in time."""
    guard = Guard(family="classifier")
    app = create_app(guard, ServiceConfig(request_timeout_s=3.0, max_concurrency=1, cache_entries=0))
    long_text = "The committee reviewed the quarterly figures, and the discussion went on for a while. " * 90
    with LiveService(app) as live:
        batch = httpx.post(live.url + "/v1/check/batch", timeout=60,
                           json={"items": [{"prompt": f"{i} {long_text}"} for i in range(40)]})  # fmt: skip
        assert batch.status_code == 504
        started = time.monotonic()
        after = httpx.post(live.url + "/v1/check", json={"prompt": "How do I bake banana bread?"}, timeout=60)
        assert after.status_code == 200 and after.json()["allowed"], (after.status_code, time.monotonic() - started)


def test_checks_deadline_bounds_every_check_inside_it():
    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    with checks_deadline(0.0):
        verdict = guard.check("hello")
    assert verdict.failure == "deadline" and not verdict.allowed
    assert guard.check("hello").allowed  # outside the block, the guard's own deadline


def test_a_proxy_stream_holds_a_guard_slot_while_it_is_checked():
    """One slot, no queue: while one stream's window checks run, a second stream is refused (an error event)
    rather than running its model calls beside it."""
    guard = Guard(ScriptedGuardModel())
    gate_open = threading.Event()

    def reply(body):
        if body.get("stream"):
            gate_open.wait(10)
            return [chat_chunk({"role": "assistant", "content": "calm words " * 50})]
        return chat_completion({"content": "fine"})

    server = ScriptedLLMServer(reply)
    app = create_app(guard, ServiceConfig(upstream=server.base_url, max_concurrency=1, max_queue=0))
    with LiveService(app) as live:
        body = {"model": "llm", "messages": USER, "stream": True}

        def first() -> str:
            return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=30).text

        worker = threading.Thread(target=lambda: results.append(first()))
        results: list[str] = []
        worker.start()
        time.sleep(1.0)  # the first stream holds its slot, waiting for its upstream
        second = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=30).text
        gate_open.set()
        worker.join(30)
    server.stop()
    assert "overloaded" in second and "calm words" not in second
    assert "calm words" in results[0] and "[DONE]" in results[0]


# -- 5. stream-first: the chunk the caller stops on is checked -----------------------------------------------------
def test_stream_first_checks_the_chunk_the_caller_stopped_on():
    guard = Guard(ScriptedGuardModel())

    @guard.protect(stream=StreamConfig(mode="stream_first", window_chars=400, overlap_chars=50))
    def generate(prompt):
        yield "A calm first chunk. "
        yield HARMFUL
        yield from ["more "] * 10

    stream = generate("hi")
    assert next(stream) == "A calm first chunk. " and next(stream) == HARMFUL
    stream.close()  # the caller stops on the harmful chunk
    assert guard.stats["released_unsafe"] == 1


# -- 6. LangChain events -------------------------------------------------------------------------------------------
async def test_guarded_astream_events_never_carry_a_blocked_response():
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate

    from guardsdk.integrations.langchain import guard_runnables, guarded_astream_events

    guard = Guard(ScriptedGuardModel())
    guard_in, guard_out = guard_runnables(guard, stream=StreamConfig(window_chars=40, overlap_chars=10))
    model = GenericFakeChatModel(messages=iter([AIMessage(content=HARMFUL)] * 2))
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | guard_in | model | guard_out
    plain = []
    with pytest.raises(GuardBlocked):
        async for event in chain.astream_events({"question": "chemistry?"}, version="v2"):
            plain.append(json.dumps(event, default=str))
    assert any(MARK in e for e in plain)  # LangChain's own event stream hands the model's tokens out
    guarded = []
    with pytest.raises(GuardBlocked):
        async for event in guarded_astream_events(chain, {"question": "chemistry?"}):
            guarded.append(event)
    assert guarded and not any(MARK in json.dumps(e, default=str) for e in guarded)
    assert any(e["event"] == "on_custom_event" and e["name"] == "guardsdk_verdict" for e in guarded)


# -- 7. extra_body cannot replace what was checked -----------------------------------------------------------------
def test_extra_body_cannot_replace_the_checked_messages_or_carry_unchecked_text():
    guard = Guard(ScriptedGuardModel())
    server, client = serve(lambda body: chat_completion({"content": "fine"}))
    guarded = guard.wrap(client)
    swap = [{"role": "user", "content": HARMFUL}]
    with pytest.raises(UncheckedFieldError, match="messages"):
        guarded.chat.completions.create(model="llm", messages=USER, extra_body={"messages": swap})
    with pytest.raises(UncheckedFieldError, match="top_k"):
        guarded.chat.completions.create(model="llm", messages=USER, extra_body={"top_k": 5})
    assert server.requests == []
    opted = guard.wrap(client, pass_fields={"top_k", "messages"})
    with pytest.raises(UncheckedFieldError, match="messages"):  # a create() parameter: never, even when passed
        opted.chat.completions.create(model="llm", messages=USER, extra_body={"messages": swap})
    assert opted.chat.completions.create(model="llm", messages=USER, extra_body={"top_k": 5}).choices
    assert server.requests[0]["top_k"] == 5 and guard.stats["passed_fields"] == 1
    server.stop()


# -- 8. the proxy follows the service's gates ----------------------------------------------------------------------
@pytest.mark.parametrize(("gates", "blocked_request", "blocked_answer"),
                         [({"response_harm"}, False, True), ({"prompt_harm"}, True, False)])  # fmt: skip
def test_the_proxy_follows_the_gates(gates, blocked_request, blocked_answer):
    guard = Guard(ScriptedGuardModel(), policy=Policy(gates=gates))
    server = ScriptedLLMServer(lambda body: chat_completion({"content": HARMFUL}))
    with LiveService(create_app(guard, ServiceConfig(upstream=server.base_url))) as live:
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="x")
        for messages, should_block in (([{"role": "user", "content": f"{MARK}?"}], blocked_request or blocked_answer),
                                       (USER, blocked_answer)):  # fmt: skip
            if should_block:
                with pytest.raises(openai.BadRequestError):
                    client.chat.completions.create(model="llm", messages=messages)
            else:
                assert client.chat.completions.create(model="llm", messages=messages).choices
    server.stop()
    assert guard.stats["ungated_prompts" if "prompt_harm" not in gates else "ungated_responses"] >= 1


# -- 9. error paths ------------------------------------------------------------------------------------------------
def test_proxy_error_paths_answer_400_and_name_nothing_internal():
    guard = Guard(ScriptedGuardModel())
    server = ScriptedLLMServer(lambda body: chat_completion({"content": "fine"}))
    down = f"http://127.0.0.1:{free_port()}/v1"
    broken = Guard.from_server(down, "internal-guard-model")
    with LiveService(create_app(guard, ServiceConfig(upstream=server.base_url))) as live:
        deep = b'{"model": "llm", "messages": ' + b"[" * 40_000 + b"]" * 40_000 + b"}"
        nan = b'{"model": "llm", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
        for raw in (deep, nan):
            answer = httpx.post(live.url + "/v1/chat/completions", content=raw, timeout=30,
                                headers={"content-type": "application/json"})  # fmt: skip
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
        assert httpx.get(live.url + "/readyz").json() == {"status": "ready"}
    with LiveService(create_app(broken, ServiceConfig(cache_entries=0, request_timeout_s=10))) as live:
        answer = httpx.post(live.url + "/v1/check", json={"prompt": "hi"}, timeout=30)
    assert answer.status_code == 503 and str(down.split(":")[2].split("/")[0]) not in answer.text
    assert answer.json()["error"] == "the guard backend failed (details in the service log)"
    server.stop()


# -- the audit flag from the guard's own reasoning -----------------------------------------------------------------
def conflicted(model_input: str) -> str:
    """Steps that argue the request is unharmful, then the answer "harmful"."""
    steps = "".join(f"## Reasoning Step {i}: There is no indication of harmful intent in the request.\n"
                    for i in (1, 2, 3))  # fmt: skip
    block = "Answers: \nRequest: harmful\nCompletion: None\nResponse: None\n"
    return f"# Task 1\n\n{steps}\n# Task 1 Conclusion: harmful\n\n---\n\n{block}"


def test_a_conflicted_verdict_is_flagged_counted_and_reported_but_its_label_stands():
    reported = []
    guard = Guard(ScriptedGuardModel(conflicted), policy=Policy(on_unsafe="annotate"),
                  on_reasoning_conflict=reported.append)  # fmt: skip
    verdict = guard.check("What is the capital of France?")
    assert verdict.prompt_harmful is True and verdict.reasoning_conflict == ("prompt_harm",)
    assert guard.stats["reasoning_conflicts"] == 1 and reported == [verdict]
    assert verdict.to_json()["reasoning_conflict"] == ["prompt_harm"]
    assert Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate")).check("hi").reasoning_conflict == ()


def test_a_cascade_escalates_a_confident_first_stage_whose_reasoning_conflicts():
    policy = Policy()
    fast = Guard(ScriptedGuardModel(conflicted)).detector
    cascade = Cascade(fast, Guard(ScriptedGuardModel()).detector)
    first = fast.detect([("What is the capital of France?", None)], policy, time.monotonic() + 5)[0]
    confident = dataclasses.replace(first, scores={"prompt_harm": 1.0})  # outside the band: it would stand
    assert cascade.escalates(confident, policy)
    assert not cascade.escalates(dataclasses.replace(confident, reasoning_conflict=()), policy)
    verdict = Guard(cascade, policy=Policy(on_unsafe="annotate")).check("What is the capital of France?")
    assert verdict.escalated and verdict.prompt_harmful is False  # the second stage decided


async def test_async_twins_hold_too():
    guard = Guard(ScriptedGuardModel())
    server = ScriptedLLMServer(lambda body: chat_completion({"content": "fine"}))
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x")
    with pytest.raises(UncheckedFieldError):
        await guard.wrap(client).chat.completions.create(model="llm", messages=USER, extra_body={"messages": []})
    with pytest.raises(UncheckedFieldError):
        await guard.acheck_messages([{"role": "user", "content": "hi", "thinking": HARMFUL}])
    await client.close()
    server.stop()
    await asyncio.sleep(0)


def test_a_backend_that_cannot_tokenize_is_a_backend_failure():
    from guardsdk.errors import BackendError

    class Untokenizing(ScriptedGuardModel):
        def tokenize(self, text):
            if MARK in text or "hello" in text:
                raise BackendError("the server could not tokenize")
            return super().tokenize(text)

    verdict = Guard(Untokenizing(), policy=Policy(on_unsafe="annotate")).check("hello")
    assert verdict.failure == "backend" and not verdict.allowed  # a 503 in the service, not a parse-like undecided


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": "", "tool_calls": {"x": {"function": {"name": "f", "arguments": HARMFUL}}}},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": HARMFUL}]},
        {"role": "assistant", "content": "", "function_call": HARMFUL},
    ],
)
def test_malformed_tool_calls_are_refused_not_read_as_empty(message):
    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    with pytest.raises(InvalidInputError):
        guard.check_messages([{"role": "user", "content": "hi"}, message])


def test_sdk_message_objects_cannot_carry_unchecked_fields_either_way():
    from openai.types.chat import ChatCompletionMessage

    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    sent = ChatCompletionMessage.model_validate({"role": "assistant", "content": "ok", "thinking": HARMFUL})
    with pytest.raises(UncheckedFieldError, match=r"messages\.thinking"):  # in a request: refused, as for a dict
        guard.wrap(serve(lambda body: chat_completion({"content": "x"}))[1]).chat.completions.create(
            model="llm", messages=[{"role": "user", "content": "hi"}, sent, {"role": "user", "content": "go on"}]
        )
    server, client = serve(lambda body: chat_completion({"content": "fine", "thinking": HARMFUL}))
    with pytest.raises(GuardBlocked):  # in an answer: an upstream's own field is model text, checked
        guard.with_policy(Policy()).wrap(client).chat.completions.create(model="llm", messages=USER)
    server.stop()


def test_a_predicted_output_is_refused_unless_passed():
    guard = Guard(ScriptedGuardModel())
    server, client = serve(lambda body: chat_completion({"content": "fine"}))
    prediction = {"type": "content", "content": HARMFUL}
    with pytest.raises(UncheckedFieldError, match="prediction"):
        guard.wrap(client).chat.completions.create(model="llm", messages=USER, prediction=prediction)
    assert server.requests == []
    guard.wrap(client, pass_fields={"prediction"}).chat.completions.create(model="llm", messages=USER,
                                                                           prediction=prediction)  # fmt: skip
    assert guard.stats["passed_fields"] == 1
    server.stop()


def test_withholding_leaves_out_error_text_that_may_quote_the_guard_output():
    from guardsdk.verdict import ParseStatus, Verdict

    guard = Guard(ScriptedGuardModel(), policy=Policy(on_unsafe="annotate"))
    unread = Verdict.undecided(has_response=False, error=f"could not read the output: {MARK}", raw=f"... {MARK} ...",
                               status=ParseStatus.FAILED)  # fmt: skip
    shown = guard.decide(unread).to_json(withhold=True)
    assert MARK not in json.dumps(shown) and shown["withheld"] and "parse status failed" in shown["error"]
    ungated = Guard(ScriptedGuardModel(), policy=Policy(gates={"refusal"}, on_unsafe="annotate")).check("hi")
    assert ungated.decision.summary == "undecided (no gated task applies); failing closed"


def test_a_detector_that_gives_the_wrong_number_of_verdicts_is_a_backend_failure_not_a_crash():
    class Short:
        name = "short"

        def detect(self, pairs, policy, deadline):
            return []

        async def adetect(self, pairs, policy, deadline):
            return []

        def close(self) -> None:
            pass

    guard = Guard(Short(), policy=Policy(on_unsafe="annotate"))
    assert [v.failure for v in guard.check_batch(["a", "b"])] == ["backend", "backend"]
    assert asyncio.run(guard.acheck("a")).failure == "backend" and not guard.check("a").allowed


def test_a_blocked_stream_reports_only_the_chunks_the_caller_got():
    from guardsdk.integrations.streaming import StreamBlocked, StreamChecker, guarded_chunks

    checker = StreamChecker(Guard(ScriptedGuardModel()), "hi", StreamConfig(window_chars=10, overlap_chars=2))
    got = []
    with pytest.raises(StreamBlocked) as caught:  # one chunk, two windows: the first passes, the second blocks
        for chunk in guarded_chunks(checker, [f"aaaaaaaaaa{MARK}yy"], lambda c: c):
            got.append(chunk)
    assert got == [] and caught.value.released == ""
