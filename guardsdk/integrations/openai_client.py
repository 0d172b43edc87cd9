"""``guard.wrap(OpenAI(...))``: an OpenAI client whose completions are guarded.

``chat.completions.create`` and ``completions.create`` keep their signatures and return types: the
prompt (the messages, as in :mod:`guardsdk.conversation`, or the prompt string) is checked before the
request, the answer after it; a stream is checked as it runs (see :mod:`guardsdk.streaming`) and comes
back as an iterator of the same chunk objects, closing the upstream stream when stopped early.
Verdicts are attached as ``result.guard_verdicts`` (and on the stream object), and blocked calls raise
:class:`~guardsdk.errors.GuardBlocked` (a stopped stream raises :class:`~guardsdk.streaming.StreamBlocked`).
Every other attribute is the wrapped client's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from guardsdk.conversation import conversation_to_pair
from guardsdk.guard import Guard
from guardsdk.integrations.decorator import text_of
from guardsdk.streaming import StreamChecker, StreamConfig, aguarded_chunks, guarded_chunks
from guardsdk.verdict import Verdict


def _attach(obj: Any, verdicts: list[Verdict]) -> Any:
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(obj, "guard_verdicts", tuple(verdicts))
    return obj


def _prompt_of(kwargs: dict[str, Any]) -> str:
    if "messages" in kwargs:
        return conversation_to_pair(list(kwargs["messages"]))[0]
    prompt = kwargs.get("prompt")
    return prompt if isinstance(prompt, str) else "\n".join(map(str, prompt or []))


class GuardedStream:
    """Iterates a guarded stream of the wrapped client's chunks."""

    def __init__(self, upstream: Any, checker: StreamChecker, verdicts: list[Verdict]) -> None:
        self._upstream = upstream
        self._checker = checker
        self.guard_verdicts = verdicts
        self._chunks = self._run()

    def _run(self) -> Iterator[Any]:
        try:
            yield from guarded_chunks(self._checker, self._upstream, text_of)
        finally:
            self.guard_verdicts = [*self.guard_verdicts, *self._checker.verdicts]
            self.close()

    def __iter__(self) -> Iterator[Any]:
        return self._chunks

    def __next__(self) -> Any:
        return next(self._chunks)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the upstream stream (cancels the request)."""
        close = getattr(self._upstream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._upstream, name)


class AsyncGuardedStream:
    """Async twin of :class:`GuardedStream`."""

    def __init__(self, upstream: Any, checker: StreamChecker, verdicts: list[Verdict]) -> None:
        self._upstream = upstream
        self._checker = checker
        self.guard_verdicts = verdicts
        self._chunks = self._run()

    async def _run(self) -> Any:
        try:
            async for chunk in aguarded_chunks(self._checker, self._upstream, text_of):
                yield chunk
        finally:
            self.guard_verdicts = [*self.guard_verdicts, *self._checker.verdicts]
            await self.close()

    def __aiter__(self) -> Any:
        return self._chunks

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        close = getattr(self._upstream, "close", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._upstream, name)


class _GuardedCreate:
    """A ``create`` endpoint (chat or text completions) with checks around it."""

    def __init__(self, endpoint: Any, guard: Guard, stream: StreamConfig, is_async: bool) -> None:
        self._endpoint = endpoint
        self._guard = guard
        self._output_guard = guard.response_guard()
        self._stream = stream
        self._is_async = is_async

    def create(self, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acreate(**kwargs)
        prompt = _prompt_of(kwargs)
        verdicts = [self._guard.check(prompt)]
        result = self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return GuardedStream(result, StreamChecker(self._guard, prompt, self._stream), verdicts)
        verdicts.append(self._output_guard.check(prompt, text_of(result) or ""))
        return _attach(result, verdicts)

    async def _acreate(self, **kwargs: Any) -> Any:
        prompt = _prompt_of(kwargs)
        verdicts = [await self._guard.acheck(prompt)]
        result = await self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return AsyncGuardedStream(result, StreamChecker(self._guard, prompt, self._stream), verdicts)
        verdicts.append(await self._output_guard.acheck(prompt, text_of(result) or ""))
        return _attach(result, verdicts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._endpoint, name)


class _Namespace:
    def __init__(self, inner: Any, **overrides: Any) -> None:
        self._inner = inner
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardedClient:
    """The wrapped client: guarded ``chat.completions.create`` and ``completions.create``."""

    def __init__(self, guard: Guard, client: Any, stream: StreamConfig | None = None) -> None:
        import openai

        is_async = isinstance(client, openai.AsyncOpenAI)
        config = stream or StreamConfig()
        self._client = client
        self.guard = guard
        self.chat = _Namespace(
            client.chat, completions=_GuardedCreate(client.chat.completions, guard, config, is_async)
        )
        self.completions = _GuardedCreate(client.completions, guard, config, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wrap(guard: Guard, client: Any, *, stream: StreamConfig | None = None) -> GuardedClient:
    """Guard an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client."""
    return GuardedClient(guard, client, stream)
