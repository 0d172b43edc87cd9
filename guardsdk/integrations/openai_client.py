"""``guard.wrap(OpenAI(...))``: an OpenAI client whose completions are guarded.

``chat.completions.create`` and ``completions.create`` keep their signatures and return types: the
prompt (every message but the app's leading system prompt, as in :mod:`guardsdk.conversation`, or each
prompt string) is checked before the request, and every choice of the answer after it, tool calls
included; a stream is checked as it runs (see :mod:`guardsdk.streaming`) and comes back as an iterator of
the same chunk objects, closing the upstream stream when stopped early. Verdicts are attached as
``result.guard_verdicts`` (and on the stream object), and blocked calls raise
:class:`~guardsdk.errors.GuardBlocked` (a stopped stream raises :class:`~guardsdk.streaming.StreamBlocked`).

No entry point passes through unchecked. ``with_options(...)`` and ``copy(...)`` return a guarded client;
``models``, ``embeddings``, ``moderations``, ``files`` and the client's settings are the wrapped client's;
every other attribute (``responses``, ``beta``, ``with_raw_response``, ``chat.completions.parse``, ...)
raises :class:`~guardsdk.errors.UnguardedEndpointError`. ``guarded.unwrapped`` hands out the raw client
by explicit choice (logged at WARNING, counted as ``unguarded_client`` in ``guard.stats``). Token-id
prompts and audio output are refused (:class:`~guardsdk.errors.InvalidInputError`): a guard checks text. A legacy
completion's ``suffix`` is checked with its prompt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from guardsdk.checks import Checks
from guardsdk.conversation import request_prompt
from guardsdk.errors import InvalidInputError, UnguardedEndpointError
from guardsdk.outputs import output_texts
from guardsdk.streaming import StreamChecker, StreamConfig, aguarded_chunks, guarded_chunks
from guardsdk.verdict import Verdict

logger = logging.getLogger("guardsdk")


#: Client attributes that call no LLM: handed through unchanged.
PASS_THROUGH = frozenset({"models", "embeddings", "moderations", "files", "close", "is_closed", "base_url",
                          "api_key", "organization", "project", "timeout", "max_retries", "default_headers",
                          "default_query"})  # fmt: skip


def _attach(obj: Any, verdicts: list[Verdict]) -> Any:
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(obj, "guard_verdicts", tuple(verdicts))
    return obj


def _prompts_of(kwargs: dict[str, Any]) -> list[str]:
    """The prompt texts of a create call (one per legacy completions prompt, its ``suffix`` included: the model
    reads both); token ids, and audio output a text guard cannot read, are refused."""
    modalities = kwargs.get("modalities") or ()
    if kwargs.get("audio") is not None or any(m != "text" for m in modalities):
        raise InvalidInputError("guardsdk checks text: an answer with audio output cannot be checked")
    if "messages" in kwargs:
        kwargs["messages"] = list(kwargs["messages"])  # a generator would be spent by the check
        return [request_prompt(kwargs["messages"])]
    prompt = kwargs.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise InvalidInputError("guardsdk checks text prompts: token-id or missing prompts cannot be checked")
    suffix = kwargs.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidInputError(f"a completion suffix must be text to be checked, not {type(suffix).__name__}")
    return [f"{p}\n{suffix}" if suffix else p for p in prompts]


def _pairs(prompts: list[str], result: Any, n: int) -> list[tuple[str, str]]:
    """(prompt, output) for every choice; a legacy completion's choice i answers prompt i // n."""
    pairs = []
    for position, (choice, text) in enumerate(zip(result.choices, output_texts(result), strict=True)):
        index = getattr(choice, "index", position)
        pairs.append((prompts[min(index // n, len(prompts) - 1)] if isinstance(index, int) else prompts[0], text))
    return pairs


class UnguardedNamespace:
    """Raises :class:`UnguardedEndpointError` for every attribute but the guarded ones given."""

    def __init__(self, path: str, **guarded: Any) -> None:
        self._path = path
        self.__dict__.update(guarded)

    def __getattr__(self, name: str) -> Any:
        raise UnguardedEndpointError(
            f"{self._path}.{name} is not guarded by guardsdk; use the guarded create(), or the raw client "
            "from guarded.unwrapped if you accept unchecked calls"
        )


class GuardedStream:
    """Iterates a guarded stream of the wrapped client's chunks."""

    def __init__(self, upstream: Any, checker: StreamChecker, verdicts: list[Verdict]) -> None:
        self._upstream = upstream
        self._checker = checker
        self.guard_verdicts = verdicts
        self._chunks = self._run()

    def _run(self) -> Iterator[Any]:
        try:
            yield from guarded_chunks(self._checker, self._upstream)
        finally:
            self.guard_verdicts = [*self.guard_verdicts, *self._checker.verdicts]
            self._close_upstream()

    def __iter__(self) -> Iterator[Any]:
        return self._chunks

    def __next__(self) -> Any:
        return next(self._chunks)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream: text already released is checked (see :meth:`StreamChecker.audit`), then the
        upstream stream is closed (which cancels the request)."""
        self._chunks.close()
        self._close_upstream()

    def _close_upstream(self) -> None:
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
            async for chunk in aguarded_chunks(self._checker, self._upstream):
                yield chunk
        finally:
            self.guard_verdicts = [*self.guard_verdicts, *self._checker.verdicts]
            await self._close_upstream()

    def __aiter__(self) -> Any:
        return self._chunks

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Async twin of :meth:`GuardedStream.close`."""
        await self._chunks.aclose()
        await self._close_upstream()

    async def _close_upstream(self) -> None:
        close = getattr(self._upstream, "close", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._upstream, name)


class _GuardedCreate(UnguardedNamespace):
    """A ``create`` endpoint (chat or text completions) with checks around it; nothing else of it."""

    def __init__(self, path: str, endpoint: Any, guard: Checks, stream: StreamConfig, is_async: bool) -> None:
        super().__init__(path)
        self._endpoint = endpoint
        self._guard = guard
        self._output_guard = guard.response_guard()
        self._stream = stream
        self._is_async = is_async

    @staticmethod
    def _check_stream_shape(prompts: list[str], kwargs: dict[str, Any]) -> None:
        if kwargs.get("stream") and (len(prompts) > 1 or (kwargs.get("n") or 1) > 1):
            raise InvalidInputError("a guarded stream has one choice: use n=1 and one prompt, or stream=False")

    def create(self, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acreate(**kwargs)
        prompts = _prompts_of(kwargs)
        self._check_stream_shape(prompts, kwargs)
        verdicts = [self._guard.check(p) for p in prompts]
        result = self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return GuardedStream(result, StreamChecker(self._guard, prompts[0], self._stream), verdicts)
        verdicts += [self._output_guard.check(p, t) for p, t in _pairs(prompts, result, kwargs.get("n") or 1)]
        return _attach(result, verdicts)

    async def _acreate(self, **kwargs: Any) -> Any:
        prompts = _prompts_of(kwargs)
        self._check_stream_shape(prompts, kwargs)
        verdicts = [await self._guard.acheck(p) for p in prompts]
        result = await self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return AsyncGuardedStream(result, StreamChecker(self._guard, prompts[0], self._stream), verdicts)
        for prompt, text in _pairs(prompts, result, kwargs.get("n") or 1):
            verdicts.append(await self._output_guard.acheck(prompt, text))
        return _attach(result, verdicts)


class GuardedClient:
    """The wrapped client: guarded ``chat.completions.create`` and ``completions.create``; see the module
    docstring for what else it hands through and what it refuses."""

    def __init__(self, guard: Checks, client: Any, stream: StreamConfig | None = None) -> None:
        import openai

        is_async = isinstance(client, openai.AsyncOpenAI)
        self._stream_config = stream or StreamConfig()
        self._client = client
        self.guard = guard
        create = _GuardedCreate("chat.completions", client.chat.completions, guard, self._stream_config, is_async)
        self.chat = UnguardedNamespace("chat", completions=create)
        self.completions = _GuardedCreate("completions", client.completions, guard, self._stream_config, is_async)

    @property
    def unwrapped(self) -> Any:
        """The raw client, whose calls are not checked: an explicit opt-out, logged and counted."""
        logger.warning("guardsdk: the raw OpenAI client was handed out; its calls are not checked")
        self.guard.count_event("unguarded_client")
        return self._client

    def _rewrapped(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> GuardedClient:
            return GuardedClient(self.guard, getattr(self._client, name)(*args, **kwargs), self._stream_config)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in PASS_THROUGH:
            return getattr(self._client, name)
        if name in ("with_options", "copy"):
            return self._rewrapped(name)
        raise UnguardedEndpointError(
            f"client.{name} is not guarded by guardsdk; use chat.completions.create / completions.create, or "
            "the raw client from guarded.unwrapped if you accept unchecked calls"
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()


def wrap(guard: Checks, client: Any, *, stream: StreamConfig | None = None) -> GuardedClient:
    """Guard an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client."""
    return GuardedClient(guard, client, stream)
