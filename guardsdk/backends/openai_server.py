"""OpenAI-compatible server backend (vLLM, llama.cpp server, Ollama): the raw completions endpoint."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from guardsdk.backends.base import Generation, failed_generation
from guardsdk.backends.server_logprobs import ServerNextTokens, joined
from guardsdk.backends.server_tokens import ServerTokens
from guardsdk.deadline import call_all_before_deadline
from guardsdk.errors import BackendError, describe, redacted_url
from guardsdk.families.base import neutralize_control_tokens

#: The context length assumed when the server does not report one.
DEFAULT_CONTEXT_LENGTH = 4096
#: Top tokens asked for at each step where scores are read (vLLM's default ceiling, ``max_logprobs``, is 20).
DEFAULT_TOP_LOGPROBS = 20


def _is_retryable(exc: BaseException) -> bool:
    """429, 5xx and connection errors (timeouts included) are retried; other 4xx are not."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def retry_after_s(exc: BaseException | None) -> float | None:
    """The seconds a 429/503 reply's ``Retry-After`` header asks for (delta-seconds form), or None."""
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class OpenAIServerBackend(ServerNextTokens):
    """Sends the GuardReasoner input as a raw prompt to ``/v1/completions``; no chat template.

    Retries 429, 5xx and connection errors with exponential backoff (tenacity), waiting what a
    ``Retry-After`` header asks; other 4xx fail at once. ``timeout_s`` of :meth:`generate` is the deadline
    of the whole call, retries and waits included: an input not answered by then ends as ``"timeout"``,
    a malformed reply as that input's ``"error"``. Token counts come from the server's ``usage``; budgets
    use the server's tokenizer where it has one (see :mod:`guardsdk.backends.server_tokens`), and the
    context length the server reports (else ``context_length``).

    Scores: where the server has a tokenizer endpoint and returns ``logprobs`` (vLLM, the llama.cpp server,
    llama-cpp-python's server), the label words an output wrote are scored from the top ``top_logprobs`` tokens
    where each was written (:mod:`guardsdk.backends.server_logprobs`): the labels carry scores, and
    :meth:`next_token_probs` serves verdict-first and needed-tasks. Elsewhere a verdict has no scores, and
    :meth:`next_token_probs` raises :class:`BackendError` saying why (a forced answer is then undecided).
    ``top_logprobs=0`` asks for none.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        context_length: int | None = None,
        max_concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError("the server backend needs openai: pip install 'guardsdk[openai]'") from exc
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.async_client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.model = model
        self.name = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.tokens = ServerTokens(base_url, model, {"Authorization": f"Bearer {api_key}"})
        self.context_length = context_length or self.tokens.context_length() or DEFAULT_CONTEXT_LENGTH
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        # Greedy means no repetition penalty; llama_cpp.server defaults to 1.1, vLLM ignores the field.
        self.extra_body = {"repeat_penalty": 1.0} if extra_body is None else extra_body
        self.init_scores(top_logprobs)

    @classmethod
    def from_pretrained(cls, base_url: str, model: str, **kwargs: Any) -> OpenAIServerBackend:
        """Connect to a server (named for symmetry with the other backends)."""
        return cls(base_url, model, **kwargs)

    def tokenize(self, text: str) -> Sequence[Any]:
        """The server's tokens of ``text``, or its UTF-8 bytes where the server has no tokenizer."""
        return self.tokens.tokenize(text)

    def detokenize(self, ids: Sequence[Any]) -> str:
        text = joined(ids)  # generated tokens as the server reported them (see server_logprobs.PieceId)
        return text if text is not None and ids else self.tokens.detokenize(ids)

    def _retrying(self, deadline: float, cls: type[Any]) -> Any:
        backoff = wait_exponential(multiplier=self.backoff_s, max=30)

        def wait(state: RetryCallState) -> float:
            asked = retry_after_s(state.outcome.exception() if state.outcome else None)
            return min(backoff(state) if asked is None else asked, max(deadline - time.monotonic(), 0.0))

        def past_deadline(state: RetryCallState) -> bool:
            asked = retry_after_s(state.outcome.exception() if state.outcome else None) or 0.0
            return time.monotonic() + asked >= deadline

        return cls(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_retries + 1) | past_deadline,
            wait=wait,
            reraise=True,
        )

    def _request(
        self, text: str, max_tokens: int, stop: Sequence[str] | None, deadline: float, special_tokens: bool,
        scores: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        # Servers parse special tokens in a raw prompt: a template without control tokens is sent with every
        # look-alike neutralized; a family whose template has them neutralized its user text when rendering.
        request: dict[str, Any] = {
            "model": self.model,
            "prompt": text if special_tokens else neutralize_control_tokens(text),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "timeout": max(deadline - time.monotonic(), 0.01),
        }
        if stop:
            request["stop"] = list(stop)
        if scores:
            request["logprobs"] = self.top_logprobs
        if self.extra_body:
            request["extra_body"] = self.extra_body
        return request

    def _to_generation(self, completion: Any) -> Generation:
        """The reply's first choice; anything malformed raises :class:`BackendError`."""
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise BackendError(f"malformed reply from {redacted_url(self.base_url)}: no choices")
        choice = choices[0]
        text, finish = getattr(choice, "text", None), getattr(choice, "finish_reason", None)
        if not isinstance(text, str):
            raise BackendError(
                f"malformed reply from {redacted_url(self.base_url)}: text is {type(text).__name__}, not str"
            )
        usage = getattr(completion, "usage", None)
        prompt_tokens, completion_tokens = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
        return Generation(
            text=text,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else 0,
            completion_tokens=completion_tokens if isinstance(completion_tokens, int) else 0,
            finish_reason=finish if isinstance(finish, str) else f"unknown ({finish!r})",
        )

    def _outcome(self, result: Any) -> Generation:
        if isinstance(result, Generation):
            return result
        if isinstance(result, (TimeoutError, self._openai.APITimeoutError)):
            return Generation("", 0, 0, "timeout")
        if isinstance(result, self._openai.OpenAIError):
            shown = redacted_url(self.base_url)
            return failed_generation(f"server {shown} failed: {describe(result).replace(self.base_url, shown)}")
        return failed_generation(describe(result))

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
        watch_ids: Iterable[int] = (),
    ) -> list[Generation]:
        """One completions request per input, up to ``max_concurrency`` at once, results in order (``watch_ids``:
        see :class:`~guardsdk.backends.base.NextTokenScorer`; read from the reply's ``logprobs``)."""
        seconds = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + seconds
        watch = self._watch(watch_ids)
        in_reply = watch is not None and self.logprobs_in_reply

        def one(text: str) -> Generation:
            request = self._request(text, max_tokens, stop, deadline, special_tokens, scores=in_reply)
            reply = self._retrying(deadline, Retrying)(self.client.completions.create, **request)
            return self.with_scores(self._to_generation(reply), reply, text, watch, deadline, special_tokens)

        calls = [functools.partial(one, text) for text in inputs]
        return [self._outcome(r) for r in call_all_before_deadline(calls, seconds, self.max_concurrency)]

    async def agenerate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
        watch_ids: Iterable[int] = (),
    ) -> list[Generation]:
        """Concurrent requests, at most ``max_concurrency`` in flight."""
        seconds = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + seconds
        gate = asyncio.Semaphore(self.max_concurrency)
        watch = await asyncio.to_thread(self._watch, watch_ids) if watch_ids else None
        in_reply = watch is not None and self.logprobs_in_reply

        async def one(text: str) -> Generation:
            async with gate:
                request = self._request(text, max_tokens, stop, deadline, special_tokens, scores=in_reply)
                async for attempt in self._retrying(deadline, AsyncRetrying):
                    with attempt:
                        completion = await self.async_client.completions.create(**request)
                generation = self._to_generation(completion)
                if watch is None:
                    return generation
                return await asyncio.to_thread(
                    self.with_scores, generation, completion, text, watch, deadline, special_tokens
                )

        async def bounded(text: str) -> Any:
            try:
                return await asyncio.wait_for(one(text), max(deadline - time.monotonic(), 0.01))
            except Exception as exc:
                return exc

        return [self._outcome(r) for r in await asyncio.gather(*(bounded(text) for text in inputs))]

    def close(self) -> None:
        """Close the HTTP clients."""
        self.client.close()
        self.tokens.close()
