"""``@guard.protect(...)``: guard a function that calls an LLM — sync, async, or streaming.

The prompt is found by parameter name (default ``"prompt"``; a message list is presented as in
:mod:`guardsdk.texts.conversation`) or by an extractor ``prompt=lambda args, kwargs: ...``. The response is
the result itself when it is text, every choice of an OpenAI completion (tool calls included), a LangChain
message, or what ``response=callable`` returns.

On a block: :class:`GuardBlocked` is raised, or ``on_block`` is returned instead (a value, or a callable
given the verdict), e.g. a refusal message. Annotate (``Policy(on_unsafe="annotate")``): the result is
returned with its verdicts reachable three ways: ``guardsdk.integrations.decorator.last_verdicts()``
(a context variable, always), a ``guard_verdicts`` attribute on results that accept one, and a text
result comes back as :class:`AnnotatedStr` — a ``str`` subclass carrying ``.guard_verdicts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from guardsdk.errors import GuardBlocked, InvalidInputError
from guardsdk.integrations.checks import Checks, prompt_stage, response_stage
from guardsdk.integrations.streaming import StreamChecker, StreamConfig, aguarded_chunks, guarded_chunks
from guardsdk.policy import OnUnsafe
from guardsdk.texts.conversation import request_prompt
from guardsdk.texts.outputs import chunk_text as default_chunk_text
from guardsdk.texts.outputs import output_texts
from guardsdk.verdict import Verdict

logger = logging.getLogger("guardsdk")
RAISE = object()  # on_block default: raise GuardBlocked
_last_verdicts: contextvars.ContextVar[tuple[Verdict, ...]] = contextvars.ContextVar("guardsdk_verdicts", default=())


def last_verdicts() -> tuple[Verdict, ...]:
    """The verdicts of the last protected call in this context (prompt check first)."""
    return _last_verdicts.get()


class AnnotatedStr(str):
    """A ``str`` that carries the verdicts of the call that produced it."""

    guard_verdicts: tuple[Verdict, ...] = ()


def _prompt_from(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return request_prompt(value)
    raise InvalidInputError(f"cannot find a prompt in a {type(value).__name__}; pass prompt=<extractor>")


def _texts(value: str | list[str] | None, result: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InvalidInputError(f"cannot find the response text in a {type(result).__name__}")


def _annotate(result: Any, verdicts: tuple[Verdict, ...]) -> Any:
    _last_verdicts.set(verdicts)
    if isinstance(result, str):
        annotated = AnnotatedStr(result)
        annotated.guard_verdicts = verdicts
        return annotated
    with contextlib.suppress(AttributeError, TypeError):  # immutable result: last_verdicts() still has them
        result.guard_verdicts = verdicts
    return result


def protect(
    guard: Checks,
    *,
    prompt: str | Callable[[tuple, dict], Any] = "prompt",
    response: Callable[[Any], str | list[str] | None] | None = None,
    chunk_text: Callable[[Any], str] | None = None,
    on_block: Any = RAISE,
    check_prompt: bool = True,
    check_response: bool = True,
    parallel: bool = False,
    stream: StreamConfig | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator factory; see the module docstring. ``parallel=True`` runs the prompt check beside the
    call and releases the result only after a safe verdict; when blocked, an async call is cancelled and a
    sync call's result discarded. Sequential is the default. ``stream`` configures checks of generators.

    Every output of a result is checked (each choice of an OpenAI completion, tool calls included);
    ``response=`` may return one text or a list. ``check_prompt=False`` / ``check_response=False`` are
    opt-outs: logged at WARNING when decorating, and counted per call (``unchecked_prompt`` /
    ``unchecked_response`` in ``guard.stats``)."""
    output_guard = response_stage(guard, "guard.protect") if check_response else None
    gated_prompt = prompt_stage(guard, "guard.protect") if check_prompt else False
    stream_config = stream or StreamConfig()
    get_response = response or output_texts
    get_chunk = chunk_text or default_chunk_text
    for skipped, name in ((not check_prompt, "prompt"), (not check_response, "response")):
        if skipped:
            logger.warning("guard.protect(check_%s=False): %ss of this function are never checked", name, name)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        def find_prompt(args: tuple, kwargs: dict) -> str:
            if callable(prompt):
                return _prompt_from(prompt(args, kwargs))
            bound = signature.bind_partial(*args, **kwargs)
            if prompt not in bound.arguments:
                raise InvalidInputError(f"{fn.__name__}() was called without its {prompt!r} argument")
            return _prompt_from(bound.arguments[prompt])

        def blocked(exc: GuardBlocked) -> Any:
            _last_verdicts.set((exc.verdict,))
            if on_block is RAISE:
                raise exc
            return on_block(exc.verdict) if callable(on_block) else on_block

        def skipped(side: str) -> None:
            """Count a check this decorator does not run: opted out, or not gated by the policy."""
            opted_out = not (check_prompt if side == "prompt" else check_response)
            guard.count_event(f"unchecked_{side}" if opted_out else f"ungated_{side}s")

        def check_in(text: str) -> tuple[Verdict, ...]:
            if gated_prompt:
                return (guard.check(text),)
            skipped("prompt")
            return ()

        async def acheck_in(text: str) -> tuple[Verdict, ...]:
            if gated_prompt:
                return (await guard.acheck(text),)
            skipped("prompt")
            return ()

        def check_out(text: str, result: Any, verdicts: tuple[Verdict, ...]) -> Any:
            if output_guard is None:
                skipped("response")
                return _annotate(result, verdicts)
            bodies = _texts(get_response(result), result)
            return _annotate(result, verdicts + tuple(output_guard.check(text, body) for body in bodies))

        async def acheck_out(text: str, result: Any, verdicts: tuple[Verdict, ...]) -> Any:
            if output_guard is None:
                skipped("response")
                return _annotate(result, verdicts)
            for body in _texts(get_response(result), result):
                verdicts += (await output_guard.acheck(text, body),)
            return _annotate(result, verdicts)

        def streamed(checker: StreamChecker | None, source: Any, guarded: Callable[..., Any]) -> Any:
            """The generator's chunks, guarded by ``checker``; as they come where no response is checked."""
            if checker is None:
                skipped("response")
                return source
            return guarded(checker, source, get_chunk)

        def stream_checker(text: str) -> StreamChecker | None:
            return None if output_guard is None else StreamChecker(guard, text, stream_config)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                text = find_prompt(args, kwargs)
                source = None
                try:
                    verdicts = await acheck_in(text)
                    checker = stream_checker(text)
                    source = fn(*args, **kwargs)
                    async for chunk in streamed(checker, source, aguarded_chunks):
                        yield chunk
                    _last_verdicts.set(verdicts + tuple(checker.verdicts if checker else ()))
                except GuardBlocked as exc:
                    replacement = blocked(exc)
                    if replacement is not None:
                        yield replacement
                finally:
                    if source is not None:
                        await source.aclose()  # an early stop cancels the upstream stream

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                text = find_prompt(args, kwargs)
                source = None
                try:
                    verdicts = check_in(text)
                    checker = stream_checker(text)
                    source = fn(*args, **kwargs)
                    yield from streamed(checker, source, guarded_chunks)
                    _last_verdicts.set(verdicts + tuple(checker.verdicts if checker else ()))
                except GuardBlocked as exc:
                    replacement = blocked(exc)
                    if replacement is not None:
                        yield replacement
                finally:
                    if source is not None:
                        source.close()  # an early stop cancels the upstream stream

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                text = find_prompt(args, kwargs)
                try:
                    if parallel and gated_prompt:
                        call = asyncio.ensure_future(fn(*args, **kwargs))
                        try:
                            verdicts: tuple[Verdict, ...] = (await guard.acheck(text),)
                        except BaseException:
                            call.cancel()
                            raise
                        result = await call
                    else:
                        verdicts = await acheck_in(text)
                        result = await fn(*args, **kwargs)
                    return await acheck_out(text, result, verdicts)
                except GuardBlocked as exc:
                    return blocked(exc)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            text = find_prompt(args, kwargs)
            try:
                if parallel and gated_prompt:
                    pool = ThreadPoolExecutor(max_workers=1)
                    call = pool.submit(fn, *args, **kwargs)
                    pool.shutdown(wait=False)
                    try:
                        verdicts = check_in(text)
                    except BaseException:
                        call.cancel()  # a sync call already running cannot be stopped: its result is discarded
                        raise
                    return check_out(text, call.result(), verdicts)
                verdicts = check_in(text)
                return check_out(text, fn(*args, **kwargs), verdicts)
            except GuardBlocked as exc:
                return blocked(exc)

        return sync_wrapper

    return decorate


__all__ = ["RAISE", "AnnotatedStr", "OnUnsafe", "last_verdicts", "protect"]
