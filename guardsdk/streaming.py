"""Checking a response while it streams: windowed re-checks, hold-back or stream-first, a final check."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from guardsdk.checks import Checks
from guardsdk.errors import GuardBlocked, InvalidInputError
from guardsdk.outputs import chunk_text
from guardsdk.policy import OnUnsafe, stops
from guardsdk.verdict import Verdict

T = TypeVar("T")
logger = logging.getLogger("guardsdk")


class StreamMode(str, enum.Enum):
    """When streamed text reaches the caller."""

    HOLD_BACK = "hold_back"  # released only once a check covering it passed
    STREAM_FIRST = "stream_first"  # released at once; the stream stops when a window fails


@dataclass(frozen=True)
class StreamConfig:
    """Window checks every ``window_chars`` new characters, each also seeing the ``overlap_chars`` before
    them (so content split across chunks or windows is still caught); always a final full-text check.

    Under ``STREAM_FIRST`` (opt-in) text reaches the caller before its check; a stream that ends early
    (the caller stops, or upstream raises) still has its released text checked afterwards, and released
    text found unsafe is logged at WARNING and counted in ``guard.stats["released_unsafe"]``.
    """

    mode: StreamMode = StreamMode.HOLD_BACK
    window_chars: int = 600
    overlap_chars: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", StreamMode(self.mode))
        if self.window_chars <= 0 or not 0 <= self.overlap_chars < self.window_chars:
            raise ValueError("need window_chars > 0 and 0 <= overlap_chars < window_chars")


class StreamBlocked(GuardBlocked):
    """A streamed response was stopped; ``released`` is the text the caller had already received."""

    def __init__(self, verdict: Verdict, released: str) -> None:
        super().__init__(verdict)
        self.released = released


@dataclass
class StreamChecker:
    """Feeds streamed text through window checks; see :class:`StreamConfig`.

    ``feed`` and ``finish`` return the text that may be released now, or raise :class:`StreamBlocked`.
    Window and final checks gate the response's harmfulness (the prompt was checked before the call);
    the guard's other policy settings (block or annotate, fail-closed or open) apply.
    """

    guard: Checks
    prompt: str
    config: StreamConfig = field(default_factory=StreamConfig)
    text: str = ""
    released_upto: int = 0
    checked_upto: int = 0  # windows up to here are scheduled
    verified_upto: int = 0  # a check covering text up to here has come back
    verdicts: list[Verdict] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Window verdicts are judged here (to stop the stream with what was released), so checks annotate.
        responses = self.guard.response_guard()
        if responses is None:
            raise ValueError("the policy gates no response task: a stream has nothing to be checked for")
        self._guard = responses.with_policy(dataclasses.replace(responses.policy, on_unsafe=OnUnsafe.ANNOTATE))

    def _windows_due(self) -> list[tuple[int, int]]:
        spans = []
        while len(self.text) - self.checked_upto >= self.config.window_chars:
            end = self.checked_upto + self.config.window_chars
            spans.append((max(0, self.checked_upto - self.config.overlap_chars), end))
            self.checked_upto = end
        return spans

    def _judge(self, verdict: Verdict, upto: int) -> None:
        self.verdicts.append(verdict)
        self.verified_upto = max(self.verified_upto, upto)
        decision = verdict.decision
        if decision is not None and decision.unsafe and self.config.mode is StreamMode.STREAM_FIRST:
            logger.warning("stream-first released text that its check then found unsafe: %s", decision.reason)
            self.guard.count_event("released_unsafe")
        if stops(verdict, self.guard.policy):
            raise StreamBlocked(verdict, self.text[: self.released_upto])

    def _unverified(self) -> bool:
        return self.released_upto > self.verified_upto

    def _release(self, upto: int) -> str:
        upto = max(upto, self.released_upto)
        out, self.released_upto = self.text[self.released_upto : upto], upto
        return out

    def append(self, chunk: str) -> str:
        """Add streamed text without checking it; return the text to release now (stream-first: all of it). Text
        is appended before the caller can see it, so a caller that stops on it still has it audited."""
        self.text += chunk
        return self._release(len(self.text)) if self.config.mode is StreamMode.STREAM_FIRST else ""

    def check_due(self) -> str:
        """Run the window checks now due; return the text they released (hold-back)."""
        for start, end in self._windows_due():
            self._judge(self._guard.check(self.prompt, self.text[start:end]), end)
        return self._release(self.checked_upto)

    async def acheck_due(self) -> str:
        """Async twin of :meth:`check_due`."""
        for start, end in self._windows_due():
            self._judge(await self._guard.acheck(self.prompt, self.text[start:end]), end)
        return self._release(self.checked_upto)

    def feed(self, chunk: str) -> str:
        """Add streamed text; run the window checks now due; return the text to release."""
        return self.append(chunk) + self.check_due()

    async def afeed(self, chunk: str) -> str:
        """Async twin of :meth:`feed`."""
        return self.append(chunk) + await self.acheck_due()

    def finish(self) -> str:
        """The final full-text check; returns the rest of the text."""
        self._judge(self._guard.check(self.prompt, self.text), len(self.text))
        self.checked_upto = len(self.text)
        return self._release(len(self.text))

    async def afinish(self) -> str:
        """Async twin of :meth:`finish`."""
        self._judge(await self._guard.acheck(self.prompt, self.text), len(self.text))
        self.checked_upto = len(self.text)
        return self._release(len(self.text))

    def audit(self) -> None:
        """After a stream ended early: check the text already released but not yet verified (never raises)."""
        if self._unverified():
            with contextlib.suppress(StreamBlocked):
                self._judge(self._guard.check(self.prompt, self.text[: self.released_upto]), self.released_upto)

    async def aaudit(self) -> None:
        """Async twin of :meth:`audit`."""
        if self._unverified():
            with contextlib.suppress(StreamBlocked):
                verdict = await self._guard.acheck(self.prompt, self.text[: self.released_upto])
                self._judge(verdict, self.released_upto)


def _text(text_of: Callable[[T], str], chunk: T) -> str:
    text = text_of(chunk)
    if not isinstance(text, str):
        raise InvalidInputError(f"the chunk text extractor gave {type(text).__name__}, not str; cannot check it")
    return text


def guarded_chunks(
    checker: StreamChecker, source: Iterable[T], text_of: Callable[[T], str] = chunk_text
) -> Iterator[T]:
    """Yield ``source``'s chunks as :class:`StreamChecker` releases their text; raises StreamBlocked.

    Stream-first yields each chunk before checking it; hold-back yields a chunk once all its text passed.
    A stream that ends early has its released text checked afterwards (:meth:`StreamChecker.audit`).
    """
    pending: list[tuple[T, int]] = []
    try:
        for chunk in source:
            text = _text(text_of, chunk)
            if checker.config.mode is StreamMode.STREAM_FIRST:
                checker.append(text)  # before the caller sees it: a stop at this chunk still audits it
                yield chunk
                checker.check_due()
                continue
            pending.append((chunk, len(checker.text) + len(text)))
            checker.feed(text)
            while pending and pending[0][1] <= checker.released_upto:
                yield pending.pop(0)[0]
        checker.finish()
    finally:
        checker.audit()
    for chunk, _ in pending:
        yield chunk


async def aguarded_chunks(
    checker: StreamChecker, source: AsyncIterable[T], text_of: Callable[[T], str] = chunk_text
) -> AsyncIterator[T]:
    """Async twin of :func:`guarded_chunks`."""
    pending: list[tuple[T, int]] = []
    try:
        async for chunk in source:
            text = _text(text_of, chunk)
            if checker.config.mode is StreamMode.STREAM_FIRST:
                checker.append(text)  # before the caller sees it: a stop at this chunk still audits it
                yield chunk
                await checker.acheck_due()
                continue
            pending.append((chunk, len(checker.text) + len(text)))
            await checker.afeed(text)
            while pending and pending[0][1] <= checker.released_upto:
                yield pending.pop(0)[0]
        await checker.afinish()
    finally:
        await checker.aaudit()
    for chunk, _ in pending:
        yield chunk
