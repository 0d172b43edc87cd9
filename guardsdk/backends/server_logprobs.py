"""Token log-probabilities from an OpenAI-compatible server's replies: what gives a guard on a model server its
scores (the label words' probabilities, as :mod:`guardsdk.detectors.answer_scores` reads them from a local model).

A completions reply with ``logprobs`` names each generated token by its text, with the ``top_logprobs`` next
tokens at that step, in one of two shapes: the legacy completions shape (``tokens``, ``top_logprobs``: one
``{text: logprob}`` per step; vLLM, llama-cpp-python's server) or the chat shape (``content``: one
``{token, logprob, top_logprobs: [{token, logprob}]}`` per step; the llama.cpp server). Servers name tokens by text,
not id, so label words are matched by their text (each word's first token, detokenized alone), and a word outside the
top ``top_logprobs`` counts as probability 0. A generation is not asked for ``logprobs`` at every step (llama-cpp-python
sorts its whole vocabulary in Python at each: 5-10x slower); its label words are probed afterwards, one ``max_tokens=1``
request each (:meth:`ServerNextTokens.with_scores`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying

from guardsdk.backends.base import Generation, continuation_tokens
from guardsdk.errors import BackendError, redacted_url
from guardsdk.families.base import neutralize_control_tokens

logger = logging.getLogger("guardsdk")

#: The label words probed in one output: its last few (the answers come last in every family's format).
MAX_PROBES = 6
#: Servers whose replies carry ``logprobs`` at little cost (computed natively): asked for them while generating.
#: Others (llama-cpp-python's server sorts its vocabulary in Python at every step) get probed afterwards.
NATIVE_LOGPROBS = frozenset({"vllm", "llama.cpp"})


def _logprob(value: Any) -> float:
    """A log-probability as a reply gives it; NaN where it is none (not a number, not finite, above 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) and number <= 0 else math.nan


@dataclass(frozen=True)
class Step:
    """One generated token: its text, and the log-probability of each of the top tokens at that step."""

    piece: str
    top: Mapping[str, float]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def reply_steps(choice: Any) -> list[Step] | None:
    """The steps of a completion choice's ``logprobs`` (either shape), or None where it carries none."""
    logprobs = _get(choice, "logprobs")
    if logprobs is None:
        return None
    tokens, tops = _get(logprobs, "tokens"), _get(logprobs, "top_logprobs")
    if isinstance(tokens, list) and isinstance(tops, list) and len(tokens) == len(tops):
        pairs = zip(tokens, tops, strict=True)
        return [Step(str(t), {str(k): _logprob(v) for k, v in (top or {}).items()}) for t, top in pairs]
    content = _get(logprobs, "content")
    if isinstance(content, list):
        steps = []
        for item in content:
            top = {str(_get(alt, "token")): _logprob(_get(alt, "logprob")) for alt in _get(item, "top_logprobs") or []}
            steps.append(Step(str(_get(item, "token")), top))
        return steps
    return None


def candidate_probs(step: Step, pieces: Sequence[str]) -> tuple[float, ...]:
    """The probability of each of ``pieces`` at ``step`` (0 for a piece outside its top tokens; NaN for a bad value,
    which leaves the reading undecided)."""
    return tuple(math.exp(step.top[piece]) if piece in step.top else 0.0 for piece in pieces)


class PieceId(int):
    """A run of generated text: a watched label word, with its id, or the text between such words, with id -1. The
    backend detokenizes a run of them by joining their texts (exactly what the server wrote)."""

    text: str

    def __new__(cls, value: int, text: str) -> PieceId:
        token = super().__new__(cls, value)
        token.text = text
        return token


def watched_steps(
    steps: Sequence[Step], watch: Mapping[int, str]
) -> tuple[tuple[PieceId, ...], dict[int, dict[int, float]]]:
    """``Generation.token_ids`` and ``Generation.watched`` from a reply's steps: at each step that wrote the text of
    a watched id (``watch``: id → its text), the log-probability of every watched id (``-inf`` outside the top). A step
    whose numbers do not fit what it wrote (the written word missing from its own top, a bad log-probability) gets
    none: no score, never a guess (:func:`~guardsdk.detectors.answer_scores.written_score` checks the rest)."""
    by_text = {text: token for token, text in watch.items()}
    ids, watched = [], {}
    for index, step in enumerate(steps):
        token = by_text.get(step.piece, -1)
        ids.append(PieceId(token, step.piece))
        if token != -1 and step.piece in step.top and not any(math.isnan(v) for v in step.top.values()):
            watched[index] = {t: step.top.get(text, -math.inf) for t, text in watch.items()}
    return tuple(ids), watched


def joined(ids: Iterable[Any]) -> str | None:
    """The text of a run of :class:`PieceId` tokens, or None where any is a plain id."""
    ids = list(ids)
    return "".join(t.text for t in ids) if all(isinstance(t, PieceId) for t in ids) else None


class ServerNextTokens:
    """Mixin of :class:`~guardsdk.backends.openai_server.OpenAIServerBackend` (it reads the backend's ``tokens``,
    ``client``, ``base_url``, ``timeout_s``, ``_request`` and ``_retrying``): the
    :class:`~guardsdk.backends.base.NextTokenScorer` side, and the scores of the label words its generations wrote."""

    tokens: Any
    client: Any
    base_url: str
    timeout_s: float
    _request: Any
    _retrying: Any

    def init_scores(self, top_logprobs: int) -> None:
        """``top_logprobs`` top tokens asked for where a label word is scored (0: no scores)."""
        self.top_logprobs = top_logprobs
        self._pieces: dict[int, str] = {}  # token id -> its text, as the server writes it
        self._pieces_lock = threading.Lock()
        self._warned = False

    def _why_no_scores(self) -> str | None:
        if self.top_logprobs <= 0:
            return "top_logprobs=0"
        if self.tokens.dialect == "bytes":
            return f"{redacted_url(self.base_url)} has no tokenizer endpoint (/tokenize, /extras/tokenize)"
        return None

    def _piece(self, token: int) -> str:
        with self._pieces_lock:
            if token not in self._pieces:
                self._pieces[token] = self.tokens.detokenize([token])
            return self._pieces[token]

    def _watch(self, watch_ids: Iterable[int]) -> dict[int, str] | None:
        """The watched ids with their texts, or None where this server cannot report them."""
        ids = list(watch_ids)
        why = self._why_no_scores() if ids else None
        if why and not self._warned:
            self._warned = True
            logger.warning("guardsdk: verdicts from %s carry no scores (%s)", redacted_url(self.base_url), why)
        if not ids or why:
            return None
        watch = {token: self._piece(token) for token in ids}
        return watch if len(set(watch.values())) == len(watch) else None  # two ids one text: no telling apart

    @property
    def logprobs_in_reply(self) -> bool:
        """Whether generations ask for ``logprobs`` (a server in :data:`NATIVE_LOGPROBS`) rather than probing."""
        return self.tokens.dialect in NATIVE_LOGPROBS

    def with_scores(
        self, generation: Generation, reply: Any, prompt: str, watch: Mapping[int, str] | None, deadline: float,
        special_tokens: bool,
    ) -> Generation:  # fmt: skip
        """``generation`` with the probabilities behind the label words it wrote, so that the detector's
        :func:`~guardsdk.detectors.answer_scores.written_score` reads them as it reads a local model's: from the
        ``logprobs`` of ``reply`` (:attr:`logprobs_in_reply`: one :class:`PieceId` a step), or else probed: at each of
        its last :data:`MAX_PROBES` watched words, one ``max_tokens=1`` request with ``logprobs`` after the text before
        the word (the server's prefix cache holds the rest), ``token_ids`` then being the output cut at those words.
        A probe that fails, or no time left, leaves that word without a score; the labels are the output's either
        way."""
        text = generation.text
        if not watch or generation.finish_reason != "stop" or not text:
            return generation
        if self.logprobs_in_reply:
            steps = reply_steps((getattr(reply, "choices", None) or [None])[0])
            if not steps:
                return generation
            ids, watched = watched_steps(steps, watch)
            return dataclasses.replace(generation, token_ids=ids, watched=watched)
        found = sorted({(at, token) for token, piece in watch.items() for at in _positions(text, piece)})[-MAX_PROBES:]
        ids: list[PieceId] = []
        watched: dict[int, dict[int, float]] = {}
        start = 0
        for at, token in found:
            if at < start:  # overlaps the word before
                continue
            if at > start:
                ids.append(PieceId(-1, text[start:at]))
            if time.monotonic() < deadline:
                try:
                    request = self._request(prompt + text[:at], 1, None, deadline, special_tokens, scores=True)
                    reply = self._retrying(deadline, Retrying)(self.client.completions.create, **request)
                    steps = reply_steps((getattr(reply, "choices", None) or [None])[0])
                    if steps:
                        watched[len(ids)] = {t: steps[0].top.get(piece, -math.inf) for t, piece in watch.items()}
                except Exception as exc:  # no score for this word, never a guess
                    shown = redacted_url(self.base_url)
                    logger.debug("guardsdk: label-word probe at %s failed: %s", shown,
                                 str(exc).replace(self.base_url, shown))  # fmt: skip
            ids.append(PieceId(token, watch[token]))
            start = at + len(watch[token])
        if start < len(text):
            ids.append(PieceId(-1, text[start:]))
        return dataclasses.replace(generation, token_ids=tuple(ids), watched=watched)

    def next_token_probs(
        self, texts: Sequence[str], candidates: Sequence[str], *, special_tokens: bool = False
    ) -> list[tuple[float, ...]]:
        """See :class:`~guardsdk.backends.base.NextTokenScorer`: one ``max_tokens=1`` request per text, read from
        its top ``top_logprobs`` tokens (a candidate outside them: 0)."""
        why = self._why_no_scores()
        if why:
            raise BackendError(f"no token probabilities from this server ({why}): no scores, verdict-first or "
                               "needed-tasks; vLLM and llama.cpp servers give them")  # fmt: skip
        results = []
        for text in texts:
            sent = text if special_tokens else neutralize_control_tokens(text)
            _, firsts = continuation_tokens(lambda t: list(self.tokens.tokenize(t)), sent, candidates)
            pieces = [self._piece(token) for token in firsts]
            if len(set(pieces)) != len(pieces):
                raise BackendError(f"continuations {list(candidates)!r} share their first token's text")
            deadline = time.monotonic() + self.timeout_s
            request = self._request(text, 1, None, deadline, special_tokens, scores=True)
            completion = self._retrying(deadline, Retrying)(self.client.completions.create, **request)
            choices = getattr(completion, "choices", None) or [None]
            steps = reply_steps(choices[0])
            if not steps:
                raise BackendError(
                    f"{redacted_url(self.base_url)} returned no logprobs: no scores, verdict-first or needed-tasks "
                    "from this server (llama-cpp-python's needs logits_all, its default)"
                )
            results.append(candidate_probs(steps[0], pieces))
        return results


def _positions(text: str, piece: str) -> list[int]:
    """Every index where ``piece`` starts in ``text``."""
    found, at = [], text.find(piece)
    while piece and at != -1:
        found.append(at)
        at = text.find(piece, at + 1)
    return found


__all__ = [
    "MAX_PROBES",
    "NATIVE_LOGPROBS",
    "PieceId",
    "ServerNextTokens",
    "Step",
    "candidate_probs",
    "joined",
    "redacted_url",
    "reply_steps",
    "watched_steps",
]
