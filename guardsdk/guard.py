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

from guardsdk.backends.base import Backend, Generation, failed_generation
from guardsdk.conversation import conversation_to_pair
from guardsdk.deadline import DeadlineExceeded, call_before_deadline
from guardsdk.errors import GuardBlocked, describe
from guardsdk.long_input import Part, Plan, merge_windows, plan_check
from guardsdk.parsing import parse_output
from guardsdk.policy import OnUnsafe, Policy
from guardsdk.protocol import build_input
from guardsdk.validation import validate_pair
from guardsdk.verdict import RESPONSE_HARM, TASKS, ParseStatus, Verdict

logger = logging.getLogger("guardsdk")

#: GuardReasoner was trained with a 2048-token cutoff; inputs beyond it are cut to fit.
DEFAULT_MAX_INPUT_TOKENS = 2048
#: Room for the reasoning and answers (a typical output is 250-400 tokens).
DEFAULT_MAX_NEW_TOKENS = 1024
#: The deadline of one check, all of it (tokenizing, windows, retries, waiting for the backend).
DEFAULT_TIMEOUT_S = 120.0
#: Why an output that did not finish decides nothing.
UNFINISHED_REASONS = {
    "length": "generation hit max_new_tokens={max_new_tokens} before it finished",
    "timeout": "generation ran past the check's deadline",
}

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
    ``timeout_s`` is the deadline of one whole check (a batch of N gets N times it); past it, undecided.
    """

    def __init__(
        self,
        model: Backend | str | os.PathLike[str] | None = None,
        *,
        policy: Policy | None = None,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
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
        if timeout_s is None or not 0 < timeout_s < float("inf"):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.on_escalate = on_escalate
        self.on_over_refusal = on_over_refusal
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._owns_backend = True

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
        twin._owns_backend = False
        return twin

    def response_guard(self) -> Guard:
        """This guard gating the response's harmfulness only (the prompt was checked before the call)."""
        return self.with_policy(dataclasses.replace(self.policy, gates=frozenset({RESPONSE_HARM})))

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

    def _plan(self, pairs: list[tuple[str, str | None]]) -> list[Plan]:
        """Tokenize and cut each input into the parts the model checks; a failure is that input's error."""
        plans = []
        for prompt, response in pairs:
            try:
                plans.append(plan_check(prompt, response, self.policy, self.max_input_tokens, self.backend))
            except Exception as exc:
                plans.append(Plan(prompt, response, error=describe(exc)))
        return plans

    @staticmethod
    def _inputs(plans: list[Plan]) -> list[str]:
        return [build_input(part.prompt, part.response) for plan in plans for part in plan.parts]

    def _checked(self, generations: Any, count: int) -> list[Generation]:
        """The backend's answer, or one error generation per input when it is not a list of ``count``."""
        if isinstance(generations, BaseException):
            return [failed_generation(describe(generations))] * count
        if not isinstance(generations, list) or len(generations) != count:
            return [failed_generation("the backend returned a malformed batch")] * count
        return generations

    def _pipeline(self, pairs: list[tuple[str, str | None]], deadline: float, started: float) -> list[Verdict]:
        plans = self._plan(pairs)
        inputs = self._inputs(plans)
        generations: Any = []
        if inputs:
            try:
                generations = self.backend.generate(
                    inputs, max_tokens=self.max_new_tokens, timeout_s=max(deadline - time.monotonic(), 0.01)
                )
            except Exception as exc:
                generations = exc
        return self._assemble(plans, self._checked(generations, len(inputs)), started)

    def _run(self, pairs: list[tuple[str, str | None]]) -> list[Verdict]:
        if not pairs:
            return []
        started = time.monotonic()
        budget = self.timeout_s * len(pairs)
        try:
            verdicts = call_before_deadline(lambda: self._pipeline(pairs, started + budget, started), budget)
        except DeadlineExceeded:
            verdicts = self._timed_out(pairs, budget, started)
        return [self._decide(v) for v in verdicts]

    async def _arun(self, pairs: list[tuple[str, str | None]]) -> list[Verdict]:
        if not pairs:
            return []
        started = time.monotonic()
        budget = self.timeout_s * len(pairs)
        try:
            plans = await asyncio.wait_for(asyncio.to_thread(self._plan, pairs), budget)  # off the event loop
            inputs = self._inputs(plans)
            generations: Any = []
            if inputs:
                remaining = max(started + budget - time.monotonic(), 0.01)
                try:
                    generations = await asyncio.wait_for(
                        self.backend.agenerate(inputs, max_tokens=self.max_new_tokens, timeout_s=remaining), remaining
                    )
                except asyncio.TimeoutError:
                    raise
                except Exception as exc:
                    generations = exc
            verdicts = self._assemble(plans, self._checked(generations, len(inputs)), started)
        except asyncio.TimeoutError:
            verdicts = self._timed_out(pairs, budget, started)
        return [self._decide(v) for v in verdicts]

    def _timed_out(self, pairs: list[tuple[str, str | None]], budget: float, started: float) -> list[Verdict]:
        latency = time.monotonic() - started
        error = f"check ran past its deadline of {budget:g}s"
        return [
            Verdict.undecided(has_response=r is not None, error=error, model=self.backend.name, latency_s=latency)
            for _, r in pairs
        ]

    def _assemble(self, plans: list[Plan], generations: list[Generation], started: float) -> list[Verdict]:
        latency = (time.monotonic() - started) / max(len(plans), 1)
        remaining = iter(generations)
        verdicts = []
        for plan in plans:
            has_response = plan.response is not None
            if plan.error is not None:
                verdict = Verdict.undecided(has_response=has_response, error=plan.error, model=self.backend.name)
            else:
                parts = [self._part_verdict(part, next(remaining)) for part in plan.parts]
                verdict = merge_windows(parts, has_response)
            verdicts.append(dataclasses.replace(verdict, latency_s=latency, input_truncated=plan.elided,
                                                long_input=plan.long))  # fmt: skip
        return verdicts

    def _part_verdict(self, part: Part, generation: Generation) -> Verdict:
        """One model output read into a verdict; an output that did not finish decides nothing."""
        has_response = part.response is not None
        run = {"model": self.backend.name, "tokens_in": generation.prompt_tokens,
               "tokens_out": generation.completion_tokens}  # fmt: skip
        if generation.finish_reason == "error" or not isinstance(generation.text, str):
            return Verdict.undecided(has_response=has_response, error=generation.error or "malformed output", **run)
        if generation.finish_reason != "stop":
            why = UNFINISHED_REASONS.get(generation.finish_reason, "generation ended with finish_reason={reason!r}")
            return Verdict.undecided(
                has_response=has_response,
                error=why.format(reason=generation.finish_reason, max_new_tokens=self.max_new_tokens),
                raw=generation.text,
                status=ParseStatus.UNFINISHED,
                output_truncated=True,
                **run,
            )
        conversation = part.prompt if part.response is None else f"{part.prompt}\n{part.response}"
        verdict = parse_output(generation.text, has_response=has_response, conversation=conversation)
        return dataclasses.replace(verdict, **run)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _decide(self, verdict: Verdict) -> Verdict:
        decision = self.policy.decide(verdict)
        verdict = dataclasses.replace(verdict, decision=decision)
        unseen = verdict.input_truncated and decision.allowed
        with self._stats_lock:
            self.stats["checks"] += 1
            self.stats["allowed" if decision.allowed else "blocked"] += 1
            if decision.unsafe:
                self.stats["unsafe"] += 1
            elif decision.fail_open:
                self.stats["failed_open"] += 1
            elif not decision.allowed:
                self.stats["failed_closed"] += 1
            for flag, name in ((verdict.long_input, "long_inputs"), (verdict.windows > 1, "windowed"),
                               (verdict.input_truncated, "elided"), (unseen, "allowed_unseen")):  # fmt: skip
                if flag:
                    self.stats[name] += 1
        if decision.fail_open or unseen:
            why = decision.reason if decision.fail_open else "part of the input was elided unseen (long_input='elide')"
            logger.warning("guard allowed a check without a decided safe verdict: %s", why)
        elif not decision.allowed:
            logger.warning("guard blocked a check: %s (model %s)", decision.reason, verdict.model)
        self._signal_refusal_outcomes(verdict)
        return verdict

    def _signal_refusal_outcomes(self, verdict: Verdict) -> None:
        """Count and report "harmful request complied with" and "benign request refused"."""
        for happened, name, callback in (
            (verdict.complied_with_harmful_request, "escalations", self.on_escalate),
            (verdict.over_refusal, "over_refusals", self.on_over_refusal),
        ):
            if not happened:
                continue
            self._count(name)
            if callback is None:
                continue
            try:
                callback(verdict)
            except Exception:  # a broken callback never loses a verdict
                logger.exception("guardsdk %s callback raised", name)
                self._count("callback_errors")

    def _enforce(self, verdict: Verdict) -> Verdict:
        if verdict.decision is not None and not verdict.decision.allowed and self.policy.on_unsafe is OnUnsafe.BLOCK:
            raise GuardBlocked(verdict)
        return verdict

    def close(self) -> None:
        """Release the backend; checks in flight end undecided. A :meth:`with_policy` twin does not own the
        backend: closing it leaves the original working."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["TASKS", "Guard"]
