"""Checking a response while it streams: windowed re-checks, hold-back or stream-first, a final check.

:class:`StreamChecker` is sans-I/O: it says which windows need a check and what the caller may have, and judges
the verdicts it is given; :func:`guarded_chunks` and :func:`aguarded_chunks` are its two drivers, which run the
checks (sync or async) and hand chunks on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from guardsdk.errors import GuardBlocked, InvalidInputError
from guardsdk.integrations.checks import Checks
from guardsdk.policy import stops
from guardsdk.texts.outputs import chunk_text
from guardsdk.verdict import Verdict

T = TypeVar("T")
#: What each window check reads at least: the default window (600) and overlap (200).
DEFAULT_CONTEXT_CHARS = 800
logger = logging.getLogger("guardsdk")


class StreamMode(str, enum.Enum):
    """When streamed text reaches the caller."""

    HOLD_BACK = "hold_back"  # released only once a check covering it passed
    STREAM_FIRST = "stream_first"  # released at once; the stream stops when a window fails


@dataclass(frozen=True)
class StreamConfig:
    """Window checks every ``window_chars`` new characters, each also seeing the ``overlap_chars`` before
    them (so content split across chunks or windows is still caught); always a final full-text check.
    ``window_chars`` says how often text is released; ``context_chars`` how much each window check reads at least
    (the last ``context_chars`` characters up to the window's end, where that is more than window plus overlap), so
    a small window never judges text piece by piece out of its context.

    Under ``STREAM_FIRST`` (opt-in) text reaches the caller before its check; a stream that ends early
    (the caller stops, or upstream raises) still has its released text checked afterwards, and released
    text found unsafe is logged at WARNING and counted in ``guard.stats["released_unsafe"]``.
    """

    mode: StreamMode = StreamMode.HOLD_BACK
    window_chars: int = 600
    overlap_chars: int = 200
    context_chars: int = DEFAULT_CONTEXT_CHARS

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", StreamMode(self.mode))
        numbers = (self.window_chars, self.overlap_chars, self.context_chars)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
            raise ValueError("window_chars, overlap_chars and context_chars must be integers")
        if self.window_chars <= 0 or self.overlap_chars < 0 or self.context_chars < 0:
            raise ValueError("need window_chars > 0, overlap_chars >= 0 and context_chars >= 0")

    @property
    def reach(self) -> int:
        """How many characters, up to its end, each window check reads."""
        return max(self.window_chars + self.overlap_chars, self.context_chars)


class StreamBlocked(GuardBlocked):
    """A streamed response was stopped; ``released`` is the text the caller had already received."""

    def __init__(self, verdict: Verdict, released: str) -> None:
        super().__init__(verdict)
        self.released = released


@dataclass(frozen=True)
class Window:
    """One check a stream needs: the response text it shows the guard, and how far into the stream it reaches."""

    text: str
    upto: int


@dataclass
class StreamChecker:
    """Window checks over streamed text (sans-I/O); see :class:`StreamConfig` and the module docstring.

    ``append`` adds text; ``due``, ``final`` and ``unverified`` say which :class:`Window` checks to run now, at the
    end, and after an early stop; ``judge`` takes each one's verdict and raises :class:`StreamBlocked` where the
    policy stops the stream. Window and final checks gate the response tasks of the policy (the prompt was checked
    before the call) through ``checks``, the guard's response guard, run as a batch of one (it decides without
    raising: the verdict is judged here); the guard's
    other settings (fail-closed or open) apply.
    """

    guard: Checks
    prompt: str
    config: StreamConfig = field(default_factory=StreamConfig)
    text: str = ""
    released_upto: int = 0  # text the checks let through
    given_upto: int = 0  # text the caller was handed (the drivers keep it: whole chunks)
    checked_upto: int = 0  # windows up to here are scheduled
    verified_upto: int = 0  # a check covering text up to here has come back
    verdicts: list[Verdict] = field(default_factory=list)

    def __post_init__(self) -> None:
        responses = self.guard.response_guard()
        if responses is None:
            raise ValueError("the policy gates no response task: a stream has nothing to be checked for")
        self.checks = responses

    def append(self, chunk: str) -> None:
        """Add streamed text, before the caller can see it (so a caller that stops on it still has it audited);
        stream-first releases it at once."""
        self.text += chunk
        if self.config.mode is StreamMode.STREAM_FIRST:
            self.released_upto = len(self.text)

    def due(self) -> list[Window]:
        """The window checks due now (each scheduled once)."""
        windows = []
        while len(self.text) - self.checked_upto >= self.config.window_chars:
            end = self.checked_upto + self.config.window_chars
            windows.append(Window(self.text[max(0, end - self.config.reach) : end], end))
            self.checked_upto = end
        return windows

    def final(self) -> Window:
        """The full-text check at the end of the stream."""
        self.checked_upto = len(self.text)
        return Window(self.text, len(self.text))

    def unverified(self) -> list[Window]:
        """After a stream ended early: a check of the text already released but not yet verified, if any."""
        return (
            [Window(self.text[: self.released_upto], self.released_upto)]
            if self.released_upto > self.verified_upto
            else []
        )

    def judge(self, verdict: Verdict, window: Window, *, stop: bool = True) -> None:
        """Record ``window``'s verdict: released text found unsafe is logged and counted (stream-first); a verdict the
        policy stops raises :class:`StreamBlocked` (unless ``stop`` is off: an audit after the stream ended), else
        hold-back releases the text it covers."""
        self.verdicts.append(verdict)
        self.verified_upto = max(self.verified_upto, window.upto)
        decision = verdict.decision
        if decision is not None and decision.unsafe and self.config.mode is StreamMode.STREAM_FIRST:
            logger.warning("stream-first released text that its check then found unsafe: %s", decision.reason)
            self.guard.count_event("released_unsafe")
        if stops(verdict, self.guard.policy):
            if stop:
                raise StreamBlocked(verdict, self.text[: self.given_upto])
            return
        self.released_upto = max(self.released_upto, window.upto)


class _Chunks(Generic[T]):
    """Which source chunks the caller may have, chunk by chunk, as the checker releases their text."""

    def __init__(self, checker: StreamChecker) -> None:
        self.checker = checker
        self.pending: list[tuple[T, int]] = []

    def add(self, chunk: T, text: str) -> list[T]:
        """Take a chunk; the chunks to hand on at once (stream-first: this one)."""
        self.checker.append(text)
        if self.checker.config.mode is StreamMode.STREAM_FIRST:
            self.checker.given_upto = len(self.checker.text)
            return [chunk]
        self.pending.append((chunk, len(self.checker.text)))
        return []

    def released(self) -> list[T]:
        """The held chunks whose text every check so far covered."""
        out = []
        while self.pending and self.pending[0][1] <= self.checker.released_upto:
            chunk, self.checker.given_upto = self.pending.pop(0)
            out.append(chunk)
        return out


def _text(text_of: Callable[[T], str], chunk: T) -> str:
    text = text_of(chunk)
    if not isinstance(text, str):
        raise InvalidInputError(f"the chunk text extractor gave {type(text).__name__}, not str; cannot check it")
    return text


def _run(checker: StreamChecker, windows: list[Window], *, stop: bool = True) -> None:
    for window in windows:
        [verdict] = checker.checks.check_batch([(checker.prompt, window.text)])
        checker.judge(verdict, window, stop=stop)


async def _arun(checker: StreamChecker, windows: list[Window], *, stop: bool = True) -> None:
    for window in windows:
        [verdict] = await checker.checks.acheck_batch([(checker.prompt, window.text)])
        checker.judge(verdict, window, stop=stop)


def guarded_chunks(
    checker: StreamChecker, source: Iterable[T], text_of: Callable[[T], str] = chunk_text
) -> Iterator[T]:
    """Yield ``source``'s chunks as :class:`StreamChecker` releases their text (the sync driver); raises
    StreamBlocked. Stream-first yields each chunk before checking it; hold-back yields a chunk once all its text
    passed. A stream that ends early has its released text checked afterwards."""
    chunks: _Chunks[T] = _Chunks(checker)
    try:
        for chunk in source:
            yield from chunks.add(chunk, _text(text_of, chunk))
            _run(checker, checker.due())
            yield from chunks.released()
        _run(checker, [checker.final()])
    finally:
        _run(checker, checker.unverified(), stop=False)
    yield from chunks.released()


async def aguarded_chunks(
    checker: StreamChecker, source: AsyncIterable[T], text_of: Callable[[T], str] = chunk_text
) -> AsyncIterator[T]:
    """The async driver of :func:`guarded_chunks`."""
    chunks: _Chunks[T] = _Chunks(checker)
    try:
        async for chunk in source:
            for out in chunks.add(chunk, _text(text_of, chunk)):
                yield out
            await _arun(checker, checker.due())
            for out in chunks.released():
                yield out
        await _arun(checker, [checker.final()])
    finally:
        await _arun(checker, checker.unverified(), stop=False)
    for out in chunks.released():
        yield out
