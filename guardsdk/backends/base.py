"""The one small interface every model backend implements."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from guardsdk.errors import BackendError


@dataclass(frozen=True)
class Generation:
    """One generated output with its token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or stop string), "length" (max_tokens), "timeout", or "error"
    token_ids: tuple[int, ...] | None = None  # the generated ids, where the backend knows them
    error: str | None = None  # why this input got no output (finish_reason "error")
    #: where generate was given ``watch_ids``: at each step (index into ``token_ids``) that chose one of them,
    #: the log-probability of every watched id
    watched: Mapping[int, Mapping[int, float]] | None = None


def failed_generation(error: str) -> Generation:
    """The answer for one input that the backend could not run: it decides nothing."""
    return Generation("", 0, 0, "error", error=error)


@runtime_checkable
class Backend(Protocol):
    """Raw inputs in, generated text and token counts out. Greedy decoding unless told otherwise.

    ``generate`` returns one :class:`Generation` per input, in order; an input that fails gets a
    ``finish_reason="error"`` generation (one bad item never fails the batch). ``timeout_s`` is the
    deadline of the whole call: inputs not finished by then end with ``finish_reason="timeout"``.
    ``special_tokens`` tokenizes inputs with special-token parsing on: for a family whose template holds
    control tokens (its user text is neutralized); off, no text can become a control token.
    """

    name: str
    context_length: int

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
    ) -> list[Generation]:
        """Generate one output per input."""
        ...

    async def agenerate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
    ) -> list[Generation]:
        """Async twin of :meth:`generate`."""
        ...

    def tokenize(self, text: str) -> list[Any]:
        """Tokens of ``text`` without special tokens: ids, or pseudo-tokens where the model is remote."""
        ...

    def detokenize(self, ids: Sequence[Any]) -> str:
        """Text of ``ids``; the inverse of :meth:`tokenize`."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


@runtime_checkable
class NextTokenScorer(Protocol):
    """A backend that can say how likely each of a few continuations is to come next (one forward pass).

    Its ``generate`` also takes ``watch_ids``: at every step that chooses one of those token ids, it records
    the log-probability of each of them (``Generation.watched``), e.g. of both label words where the model
    writes a label.
    """

    def next_token_probs(
        self, texts: Sequence[str], candidates: Sequence[str], *, special_tokens: bool = False
    ) -> list[tuple[float, ...]]:
        """For each text, the probability that the model's next token is the first token of each candidate
        continuation (tokenized in context); raises :class:`~guardsdk.errors.BackendError` when it cannot."""
        ...


def continuation_tokens(
    input_ids: Callable[[str], list[int]], text: str, candidates: Sequence[str]
) -> tuple[list[int], list[int]]:
    """The ids of ``text``, and the first id each candidate adds after it, tokenized in context.

    Raises :class:`BackendError` when a candidate merges with the end of ``text`` (its first token would not
    be a next token) or two candidates share their first token (their probabilities could not be told apart).
    """
    context = input_ids(text)
    firsts = []
    for candidate in candidates:
        full = input_ids(text + candidate)
        if len(full) <= len(context) or full[: len(context)] != context:
            raise BackendError(f"continuation {candidate!r} does not start a new token after the text")
        firsts.append(full[len(context)])
    if len(set(firsts)) != len(firsts):
        raise BackendError(f"continuations {list(candidates)!r} share a first token")
    return context, firsts


class ThreadedAsyncMixin:
    """An ``agenerate`` that runs the blocking ``generate`` in a worker thread."""

    async def agenerate(self, inputs: Sequence[str], **options: Any) -> list[Generation]:
        """Async twin of ``generate`` (same options), run in a worker thread."""
        return await asyncio.to_thread(self.generate, inputs, **options)  # type: ignore[attr-defined]


@runtime_checkable
class Warmable(Protocol):
    """A backend that can evaluate, once, the text every check starts with (its later checks then skip it)."""

    def warm(self, prefix: str, special_tokens: bool) -> None: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A backend or detector that knows which version of its model files it runs (``guardsdk eval`` records it)."""

    fingerprint: str | None


def files_fingerprint(paths: list[Path]) -> str:
    """Which version of a model's files this is: a hash of each file's name, size and modification time (cheap
    for multi-GB files; a file replaced or retrained changes it)."""
    import hashlib

    stats = sorted(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in paths if path.is_file())
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]
