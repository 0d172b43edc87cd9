"""Counting tokens for a model behind an OpenAI-compatible server, and learning its context length.

The server's own tokenizer is used where it has one: vLLM (``/tokenize``, ``/detokenize``), the llama.cpp
server (``/tokenize``, ``/detokenize``) and llama-cpp-python's server (``/extras/tokenize``,
``/extras/detokenize``), probed once, at first use, in that order (the choice is kept for the backend's
life). Elsewhere each UTF-8 byte counts as a token: byte-level BPE and SentencePiece with byte fallback
never make more tokens than bytes, so budgets stay safe. The context length comes from vLLM's
``/v1/models`` (``max_model_len``) or llama.cpp's ``/props``.

A byte-level BPE token (Llama 3) can hold part of a multi-byte UTF-8 character, so a slice of tokens (a long
input's window) can begin or end inside one. vLLM and the llama.cpp server decode such a slice leniently;
llama-cpp-python's server decodes strictly and answers 500, so the slice is retried with a few tokens trimmed
off its edges (see :meth:`ServerTokens.detokenize`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guardsdk.errors import BackendError, redacted_url

logger = logging.getLogger("guardsdk")


@dataclass(frozen=True)
class Dialect:
    """One server family's tokenize and detokenize endpoints."""

    name: str
    tokenize_path: str
    tokenize_body: Callable[[str, str], dict[str, Any]]
    detokenize_path: str
    detokenize_body: Callable[[str, list[int]], dict[str, Any]]
    text_key: str  # where the detokenize reply holds the text


DIALECTS = (
    Dialect("vllm", "/tokenize", lambda m, t: {"model": m, "prompt": t, "add_special_tokens": False},
            "/detokenize", lambda m, ids: {"model": m, "tokens": ids}, "prompt"),
    Dialect("llama.cpp", "/tokenize", lambda m, t: {"content": t, "add_special": False},
            "/detokenize", lambda m, ids: {"tokens": ids}, "content"),
    Dialect("llama-cpp-python", "/extras/tokenize", lambda m, t: {"model": m, "input": t},
            "/extras/detokenize", lambda m, ids: {"model": m, "tokens": ids}, "text"),
)  # fmt: skip
_PROBE = "Human user:\nprobe"
#: Texts up to this long are cached (templates); longer ones (user text) are never kept in memory.
_CACHED_CHARS = 4096
#: Tokens trimmed at most off each edge of a slice the server will not decode: a UTF-8 character is at most
#: 4 bytes, so a cut one leaves at most 3 byte-level tokens at an edge.
_MAX_EDGE_TRIM = 3


class ServerTokens:
    """Tokenize / detokenize through the server where it can, else bytes; see the module docstring."""

    def __init__(self, base_url: str, model: str, headers: dict[str, str], timeout_s: float = 10.0) -> None:
        import httpx

        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self._http = httpx.Client(headers=headers, timeout=timeout_s)
        self._dialect: Dialect | None = None
        self._prefix: list[int] = []  # what the server adds to every tokenization (a BOS), stripped
        self._probed = False
        self._lock = threading.Lock()
        self._cached = functools.lru_cache(maxsize=64)(self._tokenize_tuple)  # template texts repeat

    @property
    def dialect(self) -> str:
        """The tokenizer in use: a server family's name, or ``"bytes"``."""
        self._probe()
        return self.dialect_name

    @property
    def dialect_name(self) -> str:
        return self._dialect.name if self._dialect else "bytes"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        reply = self._http.post(self.root + path, json=body)
        reply.raise_for_status()
        return reply.json()

    def _probe(self) -> None:
        import httpx

        with self._lock:
            if self._probed:
                return
            for dialect in DIALECTS:
                try:
                    tokens = self._post(dialect.tokenize_path, dialect.tokenize_body(self.model, _PROBE))["tokens"]
                    empty = self._post(dialect.tokenize_path, dialect.tokenize_body(self.model, ""))["tokens"]
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue
                if tokens and all(isinstance(t, int) for t in tokens) and tokens[: len(empty)] == empty:
                    self._dialect, self._prefix = dialect, list(empty)
                    break
            # Decided once: tokens counted one way are never detokenized the other (a server that comes up
            # later keeps the byte count, which is only ever more conservative).
            self._probed = True
            logger.info("guardsdk: %s tokens counted with %s", redacted_url(self.root), self.dialect_name)

    def tokenize(self, text: str) -> tuple[Any, ...]:
        """Tokens of ``text``; short texts (the templates every check tokenizes) are cached, user text is not."""
        return self._cached(text) if len(text) <= _CACHED_CHARS else self._tokenize_tuple(text)

    def _tokenize_tuple(self, text: str) -> tuple[Any, ...]:
        return tuple(self._remote_tokenize(text)) if self._uses_server() else tuple(text.encode("utf-8"))

    def _uses_server(self) -> bool:
        self._probe()
        return self._dialect is not None

    def _remote_tokenize(self, text: str) -> list[int]:
        assert self._dialect is not None
        try:
            body = self._dialect.tokenize_body(self.model, text)
            tokens = list(self._post(self._dialect.tokenize_path, body)["tokens"])
        except Exception as exc:
            raise BackendError(f"the server could not tokenize: {exc.__class__.__name__}: {exc}") from exc
        return tokens[len(self._prefix) :] if tokens[: len(self._prefix)] == self._prefix else tokens

    def detokenize(self, ids: Sequence[Any]) -> str:
        """Text of tokens from :attr:`tokenize` (a cut UTF-8 character at an edge is dropped).

        A server that refuses a slice (a 5xx: llama-cpp-python's strict decoding of a cut character) is asked
        again with up to :data:`_MAX_EDGE_TRIM` tokens trimmed off each edge, fewest first (at most 16 requests
        in all). Any other failure (a 4xx, a connection error, a timeout) raises :class:`BackendError` at once,
        as does a refusal of every trim. Trimming only drops the cut character's pieces: a long input's windows
        overlap, and its first window starts and its last ends on a character boundary.
        """
        if not self._uses_server():
            return bytes(ids).decode("utf-8", errors="ignore")
        ids = list(ids)
        refused: Exception | None = None
        for head, tail in _edge_trims(len(ids)):
            try:
                return self._remote_detokenize(ids[head : len(ids) - tail])
            except Exception as exc:
                if not _is_refusal(exc):
                    raise BackendError(f"the server could not detokenize: {exc.__class__.__name__}: {exc}") from exc
                refused = refused or exc
        raise BackendError(
            f"the server could not detokenize, even with up to {_MAX_EDGE_TRIM} tokens trimmed off each edge: "
            f"{refused.__class__.__name__}: {refused}"
        ) from refused

    def _remote_detokenize(self, ids: list[Any]) -> str:
        assert self._dialect is not None
        body = self._dialect.detokenize_body(self.model, ids)
        return str(self._post(self._dialect.detokenize_path, body)[self._dialect.text_key])

    def context_length(self) -> int | None:
        """The model's context length as the server reports it, or None."""
        import httpx

        for path, read in (("/v1/models", _vllm_context), ("/props", _llamacpp_context)):
            try:
                reply = self._http.get(self.root + path)
                found = read(reply.json()) if reply.is_success else None
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
                found = None
            if isinstance(found, int) and found > 0:
                return found
        return None

    def close(self) -> None:
        self._http.close()


def _vllm_context(payload: Any) -> int | None:
    lengths = [m.get("max_model_len") for m in payload.get("data", []) if isinstance(m, dict)]
    return next((n for n in lengths if isinstance(n, int)), None)


def _llamacpp_context(payload: Any) -> int | None:
    return payload["default_generation_settings"]["n_ctx"]


def _edge_trims(n_tokens: int) -> list[tuple[int, int]]:
    """The ``(head, tail)`` token counts to trim off a slice of ``n_tokens``, fewest first, ``(0, 0)`` first;
    at least one token is kept."""
    steps = range(_MAX_EDGE_TRIM + 1)
    return sorted(((a, b) for a in steps for b in steps if a + b < max(n_tokens, 1)), key=sum)


def _is_refusal(exc: Exception) -> bool:
    """Whether the server answered a 5xx (a trimmed slice may decode); never a connection error or timeout."""
    import httpx

    return isinstance(exc, httpx.HTTPStatusError) and exc.response.is_server_error
