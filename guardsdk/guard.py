"""The Guard: runs a detector (a guard family's model on a backend) against a deadline and applies a policy."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from guardsdk.backends.base import Backend
from guardsdk.cache import VerdictCache
from guardsdk.deadline import DeadlineExceeded, call_before_deadline, within_checks_deadline
from guardsdk.detectors.base import Detector
from guardsdk.detectors.build import MODES, Mode, build_detector
from guardsdk.detectors.cascade import DEFAULT_BAND
from guardsdk.detectors.resolve import Model
from guardsdk.detectors.verdict_first import DEFAULT_REASON_WHEN
from guardsdk.errors import GuardBlocked, describe
from guardsdk.families import GuardFamily
from guardsdk.policy import Policy, stops
from guardsdk.texts.conversation import conversation_to_pair
from guardsdk.texts.validation import validate_pair
from guardsdk.tracing import record_check
from guardsdk.verdict import TASKS, Failure, Task, Verdict

logger = logging.getLogger("guardsdk")

#: GuardReasoner was trained with a 2048-token cutoff; inputs beyond it are cut to fit.
DEFAULT_MAX_INPUT_TOKENS = 2048
#: The deadline of one check, all of it (tokenizing, windows, retries, waiting for the backend).
DEFAULT_TIMEOUT_S = 120.0

BatchItem = str | tuple[str, str | None]


class Guard:
    """A guard: ``check(prompt, response=None)`` returns a :class:`Verdict`.

    ``model`` is a detector, a backend, a GGUF file, or a Hugging Face folder / hub id — or a list of them,
    all of which check every input (a task is safe only when every one says so); ``family`` names the
    guard family of a model (``"guardreasoner"`` by default, ``"wildguard"``, ``"llamaguard3"``, ...; see
    :mod:`guardsdk.families`). Without a model, ``Guard()`` runs ``$GUARDSDK_MODEL``, else the family's
    weights found locally, else (GuardReasoner) the bundled guardreasoner-tiny (see
    :mod:`guardsdk.detectors.resolve`), and logs which.

    Under the default policy an unsafe or undecided finding raises :class:`GuardBlocked`
    (fail-closed); ``Policy(on_unsafe="annotate")`` returns the verdict instead, and
    ``Policy(on_undecided="fail_open")`` lets undecided checks through. ``stats`` counts outcomes.
    ``timeout_s`` is the deadline of one whole check (a batch of N gets N times it); past it, undecided.
    ``threads``: CPU threads of a GGUF model loaded here (default: half the cores, which holds up when other
    processes use the CPU; see docs/backends.md), or the classifier's torch threads while it encodes
    (default: torch's own setting; ``threads=1`` for single checks on a busy machine).

    ``mode="verdict_first"`` (lossy, fast): each answer is read from its probability right after the input and
    the reasoning runs only for the checks ``reason_when`` names: by default those it would block or whose score
    is uncertain (see :class:`~guardsdk.detectors.verdict_first.VerdictFirst`; pass one as ``model`` for other options).
    ``mode="needed_tasks"`` (lossy): GuardReasoner reasons only about the tasks the policy needs for a check
    (Task 1 for a prompt), then its answers are forced. Both need a llama.cpp or transformers model.
    ``mode="cascade"``: the bundled classifier checks first and decides where its scores are outside
    ``cascade_band``; ``model`` (a GuardReasoner-family model by default) reasons about the rest, and with
    ``confirm_unsafe`` about every unsafe finding too (see :mod:`guardsdk.detectors.cascade` and docs/cascade.md).

    ``on_reasoning_conflict`` is called with every verdict whose reasoning mostly argues against one of its labels
    (``verdict.reasoning_conflict``, see :mod:`guardsdk.detectors.reasoning_audit`): rare, and wrong about 2 times
    in 3 — an audit flag that never changes a label; counted as ``reasoning_conflicts``.

    ``cache``: a :class:`~guardsdk.cache.VerdictCache` answers identical checks from memory (decided again under the
    current policy). ``observers`` get every decided verdict; every check is also an OpenTelemetry span
    (:mod:`guardsdk.tracing`) when the application configured a tracer provider.
    """

    def __init__(
        self,
        model: Model | Sequence[Model] | None = None,
        *,
        family: str | GuardFamily | None = None,
        policy: Policy | None = None,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
        max_new_tokens: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        threads: int | None = None,
        on_escalate: Callable[[Verdict], None] | None = None,
        on_over_refusal: Callable[[Verdict], None] | None = None,
        on_reasoning_conflict: Callable[[Verdict], None] | None = None,
        mode: Mode | str = Mode.SINGLE,
        cascade_band: tuple[float, float] = DEFAULT_BAND,
        confirm_unsafe: bool = False,
        reason_when: Iterable[str] = DEFAULT_REASON_WHEN,
        cache: VerdictCache | None = None,
    ) -> None:
        self.detector: Detector = build_detector(
            model, family, mode, max_input_tokens=max_input_tokens, max_new_tokens=max_new_tokens, threads=threads,
            cascade_band=cascade_band, confirm_unsafe=confirm_unsafe, reason_when=reason_when,
        )  # fmt: skip
        self.policy = policy or Policy()
        self.mode = str(Mode(mode))
        self.max_input_tokens = max_input_tokens
        if timeout_s is None or not 0 < timeout_s < float("inf"):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.on_escalate = on_escalate
        self.on_over_refusal = on_over_refusal
        self.on_reasoning_conflict = on_reasoning_conflict
        self.cache = cache
        #: Called with every decided verdict (metrics, audit logs); one that raises is logged and counted.
        self.observers: list[Callable[[Verdict], None]] = []
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._owns_backend = True

    @property
    def detectors(self) -> list[Detector]:
        """The detectors that check every input."""
        return list(getattr(self.detector, "detectors", [self.detector]))

    @property
    def _generative(self) -> Detector:
        """The detector that generates: this guard's, or a cascade's reasoning stage."""
        return getattr(self.detector, "reasoning", self.detector)

    @property
    def backend(self) -> Backend:
        """The model backend of a generative detector."""
        return self._generative.backend  # type: ignore[attr-defined, no-any-return]

    @property
    def family(self) -> GuardFamily | None:
        """The guard family of a generative detector."""
        return getattr(self._generative, "family", None)

    @property
    def max_new_tokens(self) -> int:
        return self._generative.max_new_tokens  # type: ignore[attr-defined, no-any-return]

    # -- loaders ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike[str],
        *,
        backend_kwargs: dict[str, Any] | None = None,
        **guard_kwargs: Any,
    ) -> Guard:
        """A guard on a Hugging Face model (local folder or hub id), float32 on CPU by default; pass
        ``family=`` for a model of another family than GuardReasoner."""
        from guardsdk.backends.hf import HFBackend

        return cls(HFBackend.from_pretrained(model_id_or_path, **(backend_kwargs or {})), **guard_kwargs)

    @classmethod
    def from_gguf(
        cls,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        backend_kwargs: dict[str, Any] | None = None,
        **guard_kwargs: Any,
    ) -> Guard:
        """A guard on a local GGUF file through llama.cpp (``family="llamaguard3"`` etc. for other families);
        ``threads`` defaults to half the cores."""
        from guardsdk.backends.llamacpp import LlamaCppBackend

        return cls(LlamaCppBackend(path, **{"n_threads": threads, **(backend_kwargs or {})}), **guard_kwargs)

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

    def response_guard(self) -> Guard | None:
        """This guard gating the response tasks its policy gates (``response_harm``, ``refusal``: the prompt was
        checked before the call); None when the policy gates no response task."""
        gates = self.policy.response_gates
        return self.with_policy(dataclasses.replace(self.policy, gates=gates)) if gates else None

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
        """Check an OpenAI-style message list (or LangChain messages); see :mod:`guardsdk.texts.conversation`."""
        return self.check(*conversation_to_pair(messages))

    async def acheck_messages(self, messages: Sequence[Any]) -> Verdict:
        """Async twin of :meth:`check_messages`."""
        return await self.acheck(*conversation_to_pair(messages))

    def check_batch(self, items: Sequence[BatchItem], *, timeout_s: float | None = None) -> list[Verdict]:
        """Check many inputs (prompts, or (prompt, response) pairs) in one backend call, within ``timeout_s`` for the
        whole batch (default: the guard's ``timeout_s`` per item).

        Never raises GuardBlocked: each verdict carries its decision (``verdict.allowed``).
        """
        return self._run([validate_pair(*self._unpack(item)) for item in items], timeout_s)

    async def acheck_batch(self, items: Sequence[BatchItem], *, timeout_s: float | None = None) -> list[Verdict]:
        """Async twin of :meth:`check_batch`."""
        return await self._arun([validate_pair(*self._unpack(item)) for item in items], timeout_s)

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _unpack(item: BatchItem) -> tuple[str, str | None]:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise TypeError("batch items are prompts or (prompt, response) pairs")
            return item
        return item, None

    def _cache_keys(self, pairs: list[tuple[str, str | None]]) -> list[str]:
        policy = self.policy
        scope = [self.detector.name, id(self.detector), self.mode, self.max_input_tokens, sorted(policy.gates),
                 policy.long_input.value, policy.max_windows]  # fmt: skip
        return [VerdictCache.key(scope, prompt, response) for prompt, response in pairs]

    def _from_cache(self, pairs: list[tuple[str, str | None]]) -> tuple[list[str], list[Verdict | None]]:
        if self.cache is None:
            return [], [None] * len(pairs)
        keys = self._cache_keys(pairs)
        return keys, [self.cache.get(key) for key in keys]

    def _with_fresh(self, keys: list[str], cached: list[Verdict | None], fresh: list[Verdict]) -> list[Verdict]:
        """The cached verdicts with the fresh ones (for the misses, in order) filled in and stored."""
        computed = iter(fresh)
        verdicts = [verdict if verdict is not None else next(computed) for verdict in cached]
        if self.cache is not None:
            for key, was_cached, verdict in zip(keys, cached, verdicts, strict=True):
                if was_cached is None:
                    self.cache.put(key, verdict)
        return [self.decide(v) for v in verdicts]

    def _run(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        keys, cached = self._from_cache(pairs)
        misses = [pair for pair, verdict in zip(pairs, cached, strict=True) if verdict is None]
        return self._with_fresh(keys, cached, self._detect(misses, timeout_s))

    async def _arun(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        keys, cached = self._from_cache(pairs)
        misses = [pair for pair, verdict in zip(pairs, cached, strict=True) if verdict is None]
        return self._with_fresh(keys, cached, await self._adetect(misses, timeout_s))

    def _budget(self, pairs: list[tuple[str, str | None]], timeout_s: float | None) -> float:
        """The seconds a run of ``pairs`` may take: ``timeout_s`` (default: the guard's per item), or less where an
        enclosing :func:`~guardsdk.deadline.checks_deadline` ends sooner."""
        if timeout_s is not None and not 0 < timeout_s < float("inf"):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        return within_checks_deadline(self.timeout_s * len(pairs) if timeout_s is None else timeout_s)

    def _detect(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        if not pairs:
            return []
        started = time.monotonic()
        budget = self._budget(pairs, timeout_s)
        if budget <= 0:  # an enclosing checks_deadline has passed: no model work starts
            return self._undecided_all(pairs, "check started past its deadline", started, Failure.DEADLINE)
        try:
            verdicts = call_before_deadline(lambda: self.detector.detect(pairs, self.policy, started + budget), budget)
        except DeadlineExceeded:
            verdicts = self._undecided_all(pairs, f"check ran past its deadline of {budget:g}s", started,
                                           Failure.DEADLINE)  # fmt: skip
        except Exception as exc:  # a detector that breaks its protocol still yields verdicts, undecided
            verdicts = self._undecided_all(pairs, describe(exc), started, Failure.BACKEND)
        return verdicts

    async def _adetect(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        if not pairs:
            return []
        started = time.monotonic()
        budget = self._budget(pairs, timeout_s)
        if budget <= 0:
            return self._undecided_all(pairs, "check started past its deadline", started, Failure.DEADLINE)
        try:
            verdicts = await asyncio.wait_for(self.detector.adetect(pairs, self.policy, started + budget), budget)
        except asyncio.TimeoutError:
            verdicts = self._undecided_all(pairs, f"check ran past its deadline of {budget:g}s", started,
                                           Failure.DEADLINE)  # fmt: skip
        except Exception as exc:
            verdicts = self._undecided_all(pairs, describe(exc), started, Failure.BACKEND)
        return verdicts

    def _undecided_all(
        self, pairs: list[tuple[str, str | None]], error: str, started: float, failure: Failure
    ) -> list[Verdict]:
        latency = time.monotonic() - started
        return [Verdict.undecided(has_response=r is not None, error=error, detector=self.detector.name,
                                  latency_s=latency, failure=failure) for _, r in pairs]  # fmt: skip

    def count_event(self, name: str) -> None:
        """Add one to ``stats[name]`` (thread-safe); the integrations count their opt-in paths here."""
        with self._stats_lock:
            self.stats[name] += 1

    def decide(self, verdict: Verdict) -> Verdict:
        """Apply this guard's policy to ``verdict``: count it, log what it allows without a decided safe verdict,
        and hand it to the observers and the tracer; returns it with its decision."""
        decision = self.policy.decide(verdict)
        verdict = dataclasses.replace(verdict, decision=decision)
        unseen = verdict.input_truncated and decision.allowed
        overridden = decision.allowed and any(verdict.labels.get(t) == Task(t).positive for t in self.policy.gates)
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
                               (verdict.escalated, "escalated"), (verdict.cached, "cache_hits"),
                               (verdict.failure is Failure.DEADLINE, "deadlines"),
                               (verdict.failure is Failure.BACKEND, "backend_errors"),
                               (verdict.input_truncated, "elided"), (unseen, "allowed_unseen"),
                               (overridden, "allowed_by_threshold")):  # fmt: skip
                if flag:
                    self.stats[name] += 1
        if decision.fail_open or unseen or overridden:
            why = (decision.reason if decision.fail_open else "part of the input was elided unseen (long_input='elide')"
                   if unseen else "a policy threshold overrode the model's unsafe label")  # fmt: skip
            logger.warning("guard allowed a check without a decided safe verdict: %s", why)
        elif not decision.allowed:
            logger.warning("guard blocked a check: %s (model %s)", decision.reason, verdict.model)
        if verdict.reasoning_conflict:
            logger.warning("guard reasoning argues against its own label on %s (audit flag; the label stands)",
                           ", ".join(verdict.reasoning_conflict))  # fmt: skip
        self._signal_outcomes(verdict)
        record_check(verdict, self.mode)
        for observer in self.observers:
            try:
                observer(verdict)
            except Exception:  # a broken observer never loses a verdict
                logger.exception("guardsdk observer raised")
                self.count_event("callback_errors")
        return verdict

    def _signal_outcomes(self, verdict: Verdict) -> None:
        """Count and report "harmful request complied with", "benign request refused", and a verdict whose
        reasoning argues against its own label (an audit flag: its labels stand)."""
        for happened, name, callback in (
            (verdict.complied_with_harmful_request, "escalations", self.on_escalate),
            (verdict.over_refusal, "over_refusals", self.on_over_refusal),
            (bool(verdict.reasoning_conflict), "reasoning_conflicts", self.on_reasoning_conflict),
        ):
            if not happened:
                continue
            self.count_event(name)
            if callback is None:
                continue
            try:
                callback(verdict)
            except Exception:  # a broken callback never loses a verdict
                logger.exception("guardsdk %s callback raised", name)
                self.count_event("callback_errors")

    def _enforce(self, verdict: Verdict) -> Verdict:
        if stops(verdict, self.policy):
            raise GuardBlocked(verdict)
        return verdict

    def close(self) -> None:
        """Release the backend; checks in flight end undecided. A :meth:`with_policy` twin does not own the
        backend: closing it leaves the original working."""
        if self._owns_backend:
            self.detector.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["MODES", "TASKS", "Guard"]
