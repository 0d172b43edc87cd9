"""The stream objects a guarded OpenAI client returns: the wrapped client's chunks, as the stream checks release
them (see :mod:`guardsdk.integrations.streaming`), closing the upstream stream when stopped early."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from guardsdk.integrations.streaming import StreamChecker, aguarded_chunks, guarded_chunks
from guardsdk.verdict import Verdict


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
        """Stop the stream: text already released is checked (:meth:`StreamChecker.unverified`), then the
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


__all__ = ["AsyncGuardedStream", "GuardedStream"]
