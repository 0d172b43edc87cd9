"""The Guard: runs the three GuardReasoner checks on a backend and applies a policy."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from guardsdk.backends.base import Backend, Generation
from guardsdk.conversation import conversation_to_pair
from guardsdk.errors import GuardBlocked
from guardsdk.parsing import parse_output
from guardsdk.policy import OnUnsafe, Policy
from guardsdk.protocol import build_input
from guardsdk.truncation import Fitted, fit_to_budget
from guardsdk.validation import validate_pair
from guardsdk.verdict import RESPONSE_HARM, TASKS, ParseStatus, Verdict

logger = logging.getLogger("guardsdk")

#: GuardReasoner was trained with a 2048-token cutoff; inputs beyond it are cut to fit.
DEFAULT_MAX_INPUT_TOKENS = 2048
#: Room for the reasoning and answers (a typical output is 250-400 tokens).
DEFAULT_MAX_NEW_TOKENS = 1024

BatchItem = str | tuple[str, str | None]


def load_backend(model: str | os.PathLike[str] | None) -> Backend:
    """The backend for a model path or id, or for the default model when ``model`` is None."""
    from guardsdk import model_resolution as resolution

    choice = resolution.explicit(model, "given") if model is not None else resolution.resolve_default_model()
    resolution.log_choice(choice)
    if choice.kind == "gguf":
        from guardsdk.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(choice.location)
    from guardsdk.backends.hf import HFBackend

    return HFBackend.from_pretrained(choice.location)


class Guard:
    """A reasoning guard: ``check(prompt, response=None)`` returns a :class:`Verdict`.

    ``model`` is a backend, a GGUF file, or a Hugging Face folder / hub id. Without one, ``Guard()`` runs
    ``$GUARDSDK_MODEL``, else GuardReasoner weights found locally, else the bundled guardreasoner-tiny
    (see :mod:`guardsdk.model_resolution`), and logs which.

    Under the default policy an unsafe or undecided finding raises :class:`GuardBlocked`
    (fail-closed); ``Policy(on_unsafe="annotate")`` returns the verdict instead, and
    ``Policy(on_undecided="fail_open")`` lets undecided checks through. ``stats`` counts outcomes.
    """

    def __init__(
        self,
        model: Backend | str | os.PathLike[str] | None = None,
        *,
        policy: Policy | None = None,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        timeout_s: float | None = None,
        on_escalate: Callable[[Verdict], None] | None = None,
        on_over_refusal: Callable[[Verdict], None] | None = None,
    ) -> None:
        backend = model if isinstance(model, Backend) else load_backend(model)
        if max_input_tokens + max_new_tokens > backend.context_length:
            raise ValueError(
                f"max_input_tokens + max_new_tokens = {max_input_tokens + max_new_tokens} exceeds the "
                f"backend's context length {backend.context_length}"
            )
        self.backend = backend
        self.policy = policy or Policy()
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.on_escalate = on_escalate
        self.on_over_refusal = on_over_refusal
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    # -- loaders ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike[str],
        *,
        backend_kwargs: dict[str, Any] | None = None,
        **guard_kwargs: Any,
    ) -> Guard:
        """A guard on a Hugging Face model (local folder or hub id), float32 on CPU by default."""
        from guardsdk.backends.hf import HFBackend

        return cls(HFBackend.from_pretrained(model_id_or_path, **(backend_kwargs or {})), **guard_kwargs)

    @classmethod
    def from_gguf(
        cls, path: str | os.PathLike[str], *, backend_kwargs: dict[str, Any] | None = None, **guard_kwargs: Any
    ) -> Guard:
        """A guard on a local GGUF file through llama.cpp."""
        from guardsdk.backends.llamacpp import LlamaCppBackend

        return cls(LlamaCppBackend(path, **(backend_kwargs or {})), **guard_kwargs)

    @classmethod
    def from_server(
        cls, base_url: str, model: str, *, backend_kwargs: dict[str, Any] | None = None, **guard_kwargs: Any
    ) -> Guard:
        """A guard on an OpenAI-compatible server (vLLM, llama.cpp server, Ollama)."""
        from guardsdk.backends.openai_server import OpenAIServerBackend

        return cls(OpenAIServerBackend(base_url, model, **(backend_kwargs or {})), **guard_kwargs)

    def with_policy(self, policy: Policy) -> Guard:
        """A guard on the same backend, stats and callbacks, under another policy."""
        twin = copy.copy(self)
        twin.policy = policy
        return twin

    def response_guard(self) -> Guard:
        """This guard gating the response's harmfulness only (the prompt was checked before the call)."""
        return self.with_policy(Policy(frozenset({RESPONSE_HARM}), self.policy.on_unsafe, self.policy.on_undecided))

    def protect(self, **options: Any) -> Any:
        """Decorate an LLM-calling function; see :func:`guardsdk.integrations.decorator.protect`."""
        from guardsdk.integrations.decorator import protect

        return protect(self, **options)

    def wrap(self, client: Any, **options: Any) -> Any:
        """Guard an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client (see ``guardsdk.integrations.openai_client``)."""
        from guardsdk.integrations.openai_client import wrap

        return wrap(self, client, **options)

    # -- checks ----------------------------------------------------------------------------
    def check(self, prompt: str, response: str | None = None) -> Verdict:
        """Check a prompt, or a prompt and its response; raises GuardBlocked when the policy blocks."""
        verdict = self._run([validate_pair(prompt, response)])[0]
        return self._enforce(verdict)

    async def acheck(self, prompt: str, response: str | None = None) -> Verdict:
        """Async twin of :meth:`check`."""
        verdict = (await self._arun([validate_pair(prompt, response)]))[0]
        return self._enforce(verdict)

    def check_messages(self, messages: Sequence[Any]) -> Verdict:
        """Check an OpenAI-style message list (or LangChain messages); see :mod:`guardsdk.conversation`."""
        return self.check(*conversation_to_pair(messages))

    async def acheck_messages(self, messages: Sequence[Any]) -> Verdict:
        """Async twin of :meth:`check_messages`."""
        return await self.acheck(*conversation_to_pair(messages))

    def check_batch(self, items: Sequence[BatchItem]) -> list[Verdict]:
        """Check many inputs (prompts, or (prompt, response) pairs) in one backend call.

        Never raises GuardBlocked: each verdict carries its decision (``verdict.allowed``).
        """
        return self._run([validate_pair(*self._unpack(item)) for item in items])

    async def acheck_batch(self, items: Sequence[BatchItem]) -> list[Verdict]:
        """Async twin of :meth:`check_batch`."""
        return await self._arun([validate_pair(*self._unpack(item)) for item in items])

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _unpack(item: BatchItem) -> tuple[str, str | None]:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise TypeError("batch items are prompts or (prompt, response) pairs")
            return item
        return item, None

    def _fit(self, pairs: list[tuple[str, str | None]]) -> list[Fitted]:
        return [fit_to_budget(p, r, self.max_input_tokens, self.backend) for p, r in pairs]

    def _generate_kwargs(self) -> dict[str, Any]:
        return {"max_tokens": self.max_new_tokens, "timeout_s": self.timeout_s}

    def _run(self, pairs: list[tuple[str, str | None]]) -> list[Verdict]:
        started = time.perf_counter()
        batch = [Fitted(p, r, False) for p, r in pairs]
        try:
            batch = self._fit(pairs)
            generations = self.backend.generate(
                [build_input(f.prompt, f.response) for f in batch], **self._generate_kwargs()
            )
        except Exception as exc:
            return [self._decide(self._failed(f, exc, started)) for f in batch]
        return [self._decide(self._verdict(f, g, started, len(batch))) for f, g in zip(batch, generations, strict=True)]

    async def _arun(self, pairs: list[tuple[str, str | None]]) -> list[Verdict]:
        started = time.perf_counter()
        batch = [Fitted(p, r, False) for p, r in pairs]
        try:
            batch = self._fit(pairs)
            coroutine = self.backend.agenerate(
                [build_input(f.prompt, f.response) for f in batch], **self._generate_kwargs()
            )
            hard_limit = None if self.timeout_s is None else self.timeout_s * len(batch) + 30
            generations = await asyncio.wait_for(coroutine, hard_limit)
        except Exception as exc:
            return [self._decide(self._failed(f, exc, started)) for f in batch]
        return [self._decide(self._verdict(f, g, started, len(batch))) for f, g in zip(batch, generations, strict=True)]

    def _verdict(self, fitted: Fitted, generation: Generation, started: float, batch_size: int) -> Verdict:
        verdict = parse_output(generation.text, has_response=fitted.response is not None)
        error = None
        if generation.finish_reason == "timeout":
            error = f"generation timed out after {self.timeout_s}s"
        elif generation.finish_reason == "length" and verdict.parse_status is not ParseStatus.OK:
            error = f"generation hit max_new_tokens={self.max_new_tokens} before the answers"
        return dataclasses.replace(
            verdict,
            model=self.backend.name,
            tokens_in=generation.prompt_tokens,
            tokens_out=generation.completion_tokens,
            latency_s=(time.perf_counter() - started) / batch_size,
            input_truncated=fitted.truncated,
            output_truncated=generation.finish_reason in ("length", "timeout"),
            error=error,
        )

    def _failed(self, fitted: Fitted, exc: BaseException, started: float) -> Verdict:
        has_response = fitted.response is not None
        error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        blank = parse_output("", has_response=has_response)
        return dataclasses.replace(
            blank,
            parse_status=ParseStatus.ERROR,
            model=self.backend.name,
            latency_s=time.perf_counter() - started,
            input_truncated=fitted.truncated,
            error=error,
        )

    def _decide(self, verdict: Verdict) -> Verdict:
        decision = self.policy.decide(verdict)
        with self._stats_lock:
            self.stats["checks"] += 1
            self.stats["allowed" if decision.allowed else "blocked"] += 1
            if decision.unsafe:
                self.stats["unsafe"] += 1
            elif decision.undecided:
                self.stats["failed_open" if decision.fail_open else "failed_closed"] += 1
        if decision.undecided and not decision.unsafe:
            logger.warning("guard undecided on %s: %s", ", ".join(decision.undecided), decision.reason)
        verdict = dataclasses.replace(verdict, decision=decision)
        self._signal_refusal_outcomes(verdict)
        return verdict

    def _signal_refusal_outcomes(self, verdict: Verdict) -> None:
        """Count and report "harmful request complied with" and "benign request refused"."""
        for happened, name, callback in (
            (verdict.complied_with_harmful_request, "escalations", self.on_escalate),
            (verdict.over_refusal, "over_refusals", self.on_over_refusal),
        ):
            if happened:
                with self._stats_lock:
                    self.stats[name] += 1
                if callback is not None:
                    callback(verdict)

    def _enforce(self, verdict: Verdict) -> Verdict:
        if verdict.decision is not None and not verdict.decision.allowed and self.policy.on_unsafe is OnUnsafe.BLOCK:
            raise GuardBlocked(verdict)
        return verdict

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["TASKS", "Guard"]
