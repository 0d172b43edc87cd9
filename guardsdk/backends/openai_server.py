"""OpenAI-compatible server backend (vLLM, llama.cpp server, Ollama): the raw completions endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from guardsdk.backends.base import Generation
from guardsdk.errors import BackendError

#: Characters per token assumed when no tokenizer is at hand (conservative for English text).
CHARS_PER_TOKEN = 3


def _is_retryable(exc: BaseException) -> bool:
    """429, 5xx and connection errors (timeouts included) are retried; other 4xx are not."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


class OpenAIServerBackend:
    """Sends the GuardReasoner input as a raw prompt to ``/v1/completions``; no chat template.

    Retries 429, 5xx and connection errors with exponential backoff (tenacity); other 4xx fail at
    once. Token counts come from the server's ``usage``. Without a local tokenizer, truncation
    budgets use an estimate of ``CHARS_PER_TOKEN`` characters per token.
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
        context_length: int = 8192,
        max_concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
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
        self.context_length = context_length
        self.max_concurrency = max_concurrency
        # Greedy means no repetition penalty; llama_cpp.server defaults to 1.1, vLLM ignores the field.
        self.extra_body = {"repeat_penalty": 1.0} if extra_body is None else extra_body
        self._retry: dict[str, Any] = {
            "retry": retry_if_exception(_is_retryable),
            "stop": stop_after_attempt(max_retries + 1),
            "wait": wait_exponential(multiplier=backoff_s, max=30),
            "reraise": True,
        }

    @classmethod
    def from_pretrained(cls, base_url: str, model: str, **kwargs: Any) -> OpenAIServerBackend:
        """Connect to a server (named for symmetry with the other backends)."""
        return cls(base_url, model, **kwargs)

    def tokenize(self, text: str) -> list[str]:
        """An estimate: pseudo-tokens of ``CHARS_PER_TOKEN`` characters each."""
        return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]

    def detokenize(self, ids: Sequence[str]) -> str:
        return "".join(ids)

    def _request(
        self, text: str, max_tokens: int, stop: Sequence[str] | None, timeout_s: float | None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "prompt": text,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if stop:
            request["stop"] = list(stop)
        if self.extra_body:
            request["extra_body"] = self.extra_body
        if timeout_s is not None:
            request["timeout"] = timeout_s
        return request

    def _to_generation(self, completion: Any) -> Generation:
        choice = completion.choices[0]
        usage = completion.usage
        return Generation(
            text=choice.text or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )

    def _wrap_error(self, exc: Exception) -> BackendError:
        if isinstance(exc, self._openai.APITimeoutError):
            return BackendError(f"server {self.base_url} timed out")
        return BackendError(f"server {self.base_url} failed: {exc.__class__.__name__}: {exc}")

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> list[Generation]:
        """One completions request per input; up to ``max_concurrency`` run at once, results in order."""

        def one(text: str) -> Generation:
            request = self._request(text, max_tokens, stop, timeout_s)
            try:
                completion = Retrying(**self._retry)(self.client.completions.create, **request)
            except self._openai.OpenAIError as exc:
                raise self._wrap_error(exc) from exc
            return self._to_generation(completion)

        if len(inputs) <= 1:
            return [one(text) for text in inputs]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(inputs))) as pool:
            return list(pool.map(one, inputs))

    async def agenerate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> list[Generation]:
        """Concurrent requests, at most ``max_concurrency`` in flight."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(text: str) -> Generation:
            request = self._request(text, max_tokens, stop, timeout_s)
            async with gate:
                try:
                    async for attempt in AsyncRetrying(**self._retry):
                        with attempt:
                            completion = await self.async_client.completions.create(**request)
                except self._openai.OpenAIError as exc:
                    raise self._wrap_error(exc) from exc
            return self._to_generation(completion)

        return list(await asyncio.gather(*(one(text) for text in inputs)))

    def close(self) -> None:
        """Close the HTTP clients."""
        self.client.close()
