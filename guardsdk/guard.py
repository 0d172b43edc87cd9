"""The Guard: runs a detector (a guard family's model on a backend) against a deadline and applies a policy."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from guardsdk.backends.base import Backend
from guardsdk.cache import CacheLookup, VerdictCache
from guardsdk.deadline import within_checks_deadline
from guardsdk.detectors.base import Detector, adetect_within, detect_within
from guardsdk.detectors.build import MODES, Mode, build_detector
from guardsdk.detectors.cascade import DEFAULT_BAND
from guardsdk.detectors.resolve import Model
from guardsdk.detectors.verdict_first import DEFAULT_REASON_WHEN
from guardsdk.errors import GuardBlocked
from guardsdk.families import GuardFamily
from guardsdk.outcomes import Outcomes
from guardsdk.policy import Policy, stops
from guardsdk.texts.conversation import conversation_to_pair
from guardsdk.texts.validation import validate_pair
from guardsdk.verdict import TASKS, Verdict

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
        self.outcomes = Outcomes()  # stats, warnings, callbacks: shared with with_policy twins
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

    def _cached(self, pairs: list[tuple[str, str | None]]) -> CacheLookup:
        policy = self.policy
        scope = [self.detector.name, id(self.detector), self.mode, self.max_input_tokens, sorted(policy.gates),
                 policy.long_input.value, policy.max_windows]  # fmt: skip
        return CacheLookup(self.cache, scope, pairs)

    def _run(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        lookup = self._cached(pairs)
        fresh = detect_within(self.detector, lookup.misses, self.policy, self._budget(lookup.misses, timeout_s))
        return [self.decide(verdict) for verdict in lookup.fill(fresh)]

    async def _arun(self, pairs: list[tuple[str, str | None]], timeout_s: float | None = None) -> list[Verdict]:
        lookup = self._cached(pairs)
        fresh = await adetect_within(self.detector, lookup.misses, self.policy, self._budget(lookup.misses, timeout_s))
        return [self.decide(verdict) for verdict in lookup.fill(fresh)]

    def _budget(self, pairs: list[tuple[str, str | None]], timeout_s: float | None) -> float:
        """The seconds a run of ``pairs`` may take: ``timeout_s`` (default: the guard's per item), or less where an
        enclosing :func:`~guardsdk.deadline.checks_deadline` ends sooner."""
        if timeout_s is not None and not 0 < timeout_s < float("inf"):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        return within_checks_deadline(self.timeout_s * len(pairs) if timeout_s is None else timeout_s)

    @property
    def stats(self) -> Counter[str]:
        """What this guard (and its :meth:`with_policy` twins) decided and did: see docs/policy.md."""
        return self.outcomes.stats

    def count_event(self, name: str) -> None:
        """Add one to ``stats[name]`` (thread-safe); the integrations count their opt-in paths here."""
        self.outcomes.count(name)

    def decide(self, verdict: Verdict) -> Verdict:
        """Apply this guard's policy to ``verdict``: count it, log what it allows without a decided safe verdict,
        and hand it to the callbacks, the observers and the tracer; returns it with its decision."""
        verdict = dataclasses.replace(verdict, decision=self.policy.decide(verdict))
        callbacks = {"escalations": self.on_escalate, "over_refusals": self.on_over_refusal,
                     "reasoning_conflicts": self.on_reasoning_conflict}  # fmt: skip
        self.outcomes.record(verdict, self.policy, self.mode, self.observers, callbacks)
        return verdict

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
