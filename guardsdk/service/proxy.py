"""The guarded proxy: OpenAI's ``/v1/chat/completions`` and ``/v1/completions`` in front of an upstream LLM.

The prompt is checked before the call and every returned choice (tool calls included) after it, by
:func:`guardsdk.integrations.openai_client.wrap` around an ``AsyncOpenAI`` client of ``--upstream``; a stream
is checked with hold-back as it runs and sent on as server-sent events. Every answer carries the verdicts in
the extension field ``guardsdk`` (``{"blocked": bool, "verdicts": [...]}``): on the completion, in the error
object, or — in a stream — on a last chunk with no choices. A block is answered as ``ServiceConfig.on_block``
says (an error with code ``content_blocked``, or a refusal completion with ``finish_reason="content_filter"``);
a guard that could not decide in time or whose backend failed answers 504 / 503 (failing closed).
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from guardsdk.errors import GuardBlocked, InvalidInputError, UncheckedFieldError
from guardsdk.integrations.streaming import StreamBlocked
from guardsdk.service.config import OnBlock, ServiceConfig
from guardsdk.service.errors import ServiceError
from guardsdk.service.limits import Overloaded
from guardsdk.service.state import ServiceState, failure_error, shown
from guardsdk.texts.conversation import unchecked_fields
from guardsdk.verdict import Verdict

router = APIRouter()
CHAT, TEXT = "chat", "text"
#: The most refusal choices one blocked call gets (OpenAI's own limit on ``n``): a huge ``n`` builds no huge answer.
MAX_CHOICES = 128
#: The create() parameters guardsdk itself sets or that are not part of the request body.
_CLIENT_ONLY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def reason(verdict: Verdict) -> str:
    """Why the policy stopped ``verdict``, for a client: task names, no content or error text."""
    return verdict.decision.summary if verdict.decision else "blocked"


def log_block(request: Request, verdict: Verdict) -> None:
    """Put a block into the request's log line, with the policy's full reason (the service's log, not the client)."""
    request.state.log.update(blocked=1, reasons=[verdict.decision.reason if verdict.decision else ""])


def guardsdk_field(verdicts: list[Verdict], blocked: bool, config: ServiceConfig) -> dict[str, Any]:
    """The ``guardsdk`` extension field (what the guard wrote about a blocked text is withheld: see ``shown``)."""
    return {"blocked": blocked, "verdicts": [shown(v, config) for v in verdicts]}


def json_body(raw: bytes) -> Any:
    """The request body as strict JSON: ``NaN``/``Infinity`` and nesting too deep to parse are 400, never 500."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        raise ServiceError(400, "invalid_json", f"the body is not JSON ({exc.__class__.__name__})") from None


def create_arguments(body: dict[str, Any], create: Any, pass_fields: frozenset[str]) -> dict[str, Any]:
    """The body as keyword arguments of the raw client's ``create``. A field it does not name (an upstream's
    extension) goes in ``extra_body`` only when the operator passes it (``pass_fields``); otherwise 400."""
    named = set(inspect.signature(create).parameters) - _CLIENT_ONLY
    kwargs = {key: value for key, value in body.items() if key in named}
    extra = {key: value for key, value in body.items() if key not in named}
    refused = sorted(set(extra) - pass_fields)
    if refused:
        raise ServiceError(400, "unchecked_field", f"body fields {refused} are not OpenAI's and the guard does not "
                           "check them; an operator can pass such fields with --pass-field")  # fmt: skip
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def refusal_choice(kind: str, index: int, text: str, *, chunk: bool) -> dict[str, Any]:
    if kind == TEXT:
        return {"index": index, "text": text, "finish_reason": "content_filter", "logprobs": None}
    key = "delta" if chunk else "message"
    return {"index": index, key: {"role": "assistant", "content": text}, "finish_reason": "content_filter",
            "logprobs": None}  # fmt: skip


def envelope(kind: str, model: str, *, chunk: bool) -> dict[str, Any]:
    """The fields every completion (or chunk) of ``kind`` has."""
    prefix = "chatcmpl" if kind == CHAT else "cmpl"
    object_name = {(CHAT, False): "chat.completion", (CHAT, True): "chat.completion.chunk"}.get(
        (kind, chunk), "text_completion")  # fmt: skip
    return {"id": f"{prefix}-guardsdk-{uuid.uuid4().hex[:24]}", "object": object_name, "created": int(time.time()),
            "model": model}  # fmt: skip


def blocked_answer(config: ServiceConfig, verdict: Verdict, kind: str, body: dict[str, Any]) -> Response:
    """A blocked call in OpenAI's shapes: an error, or a refusal (a completion, or a one-chunk stream)."""
    extension = guardsdk_field([verdict], True, config)
    failed = failure_error(verdict)
    if failed is not None:
        failed.extra["guardsdk"] = extension
        return failed.response()
    if config.on_block is OnBlock.ERROR:
        return ServiceError(400, "content_blocked", f"guardsdk blocked this call: {reason(verdict)}",
                            guardsdk=extension).response()  # fmt: skip
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    model, n = str(body.get("model", "")), min(max(n, 1), MAX_CHOICES)
    stream = bool(body.get("stream"))
    answer = envelope(kind, model, chunk=stream)
    answer["choices"] = [refusal_choice(kind, i, config.refusal, chunk=stream) for i in range(n)]
    answer["guardsdk"] = extension
    if not stream:
        answer["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return JSONResponse(answer)
    return StreamingResponse(iter([_event(answer), "data: [DONE]\n\n"]), media_type="text/event-stream")


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def upstream_error(exc: openai.OpenAIError) -> Response:
    """The upstream's own error answer, passed on; 502 / 504 when it could not be reached in time."""
    if isinstance(exc, openai.APIStatusError):
        return Response(exc.response.content, status_code=exc.status_code,
                        media_type=exc.response.headers.get("content-type", "application/json"))  # fmt: skip
    if isinstance(exc, openai.APITimeoutError):
        return ServiceError(504, "upstream_timeout", "the upstream LLM did not answer in time").response()
    return ServiceError(502, "upstream_unavailable", f"the upstream LLM failed: {exc}").response()


async def _events(request: Request, kind: str, stream: Any, model: str) -> AsyncIterator[str]:
    """The guarded stream as server-sent events; a block or upstream failure ends it with an error event (or,
    under ``on_block="refusal"``, a ``content_filter`` chunk); the verdicts follow on a last, choice-less chunk."""
    state: ServiceState = request.app.state.service
    blocked: Verdict | None = None
    ended = False  # the stream ran to its end, was stopped, or failed upstream: anything but the client leaving
    try:
        async with state.proxy_gate.admit():  # type: ignore[union-attr]  # its window checks hold a slot, as checks do
            async for chunk in stream:
                yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"
        ended = True
    except Overloaded:
        ended = True
        state.metrics.overloaded.inc()
        yield _event(ServiceError(429, "overloaded", "every guard slot is busy: the stream was not checked, and ends "
                                  "here; retry later").body())  # fmt: skip
        return
    except StreamBlocked as exc:
        blocked, ended = exc.verdict, True
        log_block(request, exc.verdict)
    except (openai.OpenAIError, InvalidInputError) as exc:
        ended = True
        yield _event(ServiceError(502, "upstream_stream_failed", f"the upstream stream failed: {exc}").body())
        return
    finally:
        if not ended:
            state.metrics.disconnects.inc()
        with anyio.CancelScope(shield=True):  # closing the upstream must survive the client's cancellation
            await stream.close()
    verdicts = list(stream.guard_verdicts)
    if blocked is not None:
        failed = failure_error(blocked)
        if failed is not None or state.config.on_block is OnBlock.ERROR:
            error = failed or ServiceError(400, "content_blocked", f"guardsdk stopped this stream: {reason(blocked)}")
            error.extra["guardsdk"] = guardsdk_field(verdicts, True, state.config)
            yield _event(error.body())
            return
        final = envelope(kind, model, chunk=True)  # the refusal ends what was released
        final["choices"] = [refusal_choice(kind, 0, state.config.refusal, chunk=True)]
        yield _event(final)
    last = envelope(kind, model, chunk=True)
    last["choices"] = []
    last["guardsdk"] = guardsdk_field(verdicts, blocked is not None, state.config)
    yield _event(last)
    yield "data: [DONE]\n\n"


async def _proxy(request: Request, kind: str) -> Response:
    state: ServiceState = request.app.state.service
    if state.client is None:
        raise ServiceError(404, "no_upstream", "this guard service has no upstream LLM (start it with --upstream)")
    body = json_body(await request.body())
    if not isinstance(body, dict):
        raise ServiceError(400, "invalid_json", "the body must be a JSON object")
    endpoint = state.client.chat.completions if kind == CHAT else state.client.completions
    raw = state.upstream.chat.completions if kind == CHAT else state.upstream.completions
    kwargs = create_arguments(body, raw.create, state.config.pass_fields)
    try:
        message_fields = unchecked_fields(body["messages"]) if isinstance(body.get("messages"), list) else []
    except InvalidInputError as exc:
        raise ServiceError(400, "invalid_input", str(exc)) from None
    for name in sorted({*kwargs.get("extra_body", ()), *message_fields} & state.config.pass_fields):
        state.metrics.unchecked_fields.labels(name).inc()
    model = str(body.get("model", ""))

    async def call() -> Any:
        try:
            return await endpoint.create(**kwargs)
        except GuardBlocked as exc:
            return exc
        except TypeError as exc:  # a missing or malformed argument of the OpenAI client
            raise ServiceError(400, "invalid_request", str(exc)) from None

    try:
        result = await state.admitted(call, lambda: None, proxy=True)
    except UncheckedFieldError as exc:
        raise ServiceError(400, "unchecked_field", str(exc)) from None
    except InvalidInputError as exc:
        raise ServiceError(400, "invalid_input", str(exc)) from None
    except openai.OpenAIError as exc:
        return upstream_error(exc)
    if result is None:
        error = f"request ran past its deadline of {state.config.request_timeout_s:g}s"
        raise ServiceError(504, "guard_timeout", f"the guarded call did not finish in time; failing closed ({error})")
    if isinstance(result, GuardBlocked):
        log_block(request, result.verdict)
        if state.config.log_content:
            request.state.log["content"] = body.get("messages") or body.get("prompt")
        return blocked_answer(state.config, result.verdict, kind, body)
    if body.get("stream"):
        return StreamingResponse(_events(request, kind, result, model), media_type="text/event-stream")
    answer = result.model_dump(exclude_unset=True)
    answer["guardsdk"] = guardsdk_field(list(getattr(result, "guard_verdicts", ())), False, state.config)
    return JSONResponse(answer)


@router.get("/v1/models")
async def models(request: Request) -> Response:
    """The upstream's models, as it lists them (the proxy serves what the upstream serves), holding a proxy slot. An
    upstream error is a generic 502: its text (which may echo the proxy's upstream key) stays in the service log."""
    state: ServiceState = request.app.state.service
    if state.upstream is None:
        raise ServiceError(404, "no_upstream", "this guard service has no upstream LLM (start it with --upstream)")

    async def listed() -> Any:
        raw = await state.upstream.models.with_raw_response.list()
        return raw.http_response.json()

    try:
        answer = await state.admitted(listed, lambda: None, proxy=True)
    except openai.APIStatusError as exc:
        request.state.log["upstream_status"] = exc.status_code
        return ServiceError(502, "upstream_error", f"the upstream LLM refused to list its models (HTTP "
                            f"{exc.status_code})").response()  # fmt: skip
    except openai.OpenAIError as exc:
        return upstream_error(exc)
    except ValueError:
        return ServiceError(502, "upstream_unavailable", "the upstream's model list is not JSON").response()
    if answer is None:
        return ServiceError(504, "upstream_timeout", "the upstream LLM did not answer in time").response()
    return JSONResponse(answer)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions, guarded both ways (body: OpenAI's ``ChatCompletionCreateParams``)."""
    return await _proxy(request, CHAT)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    """OpenAI legacy completions, guarded both ways (body: OpenAI's ``CompletionCreateParams``)."""
    return await _proxy(request, TEXT)
