"""What the service's routes share: the guard, its policies, limits, metrics, and the deadline of a request."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from guardsdk.deadline import checks_deadline
from guardsdk.guard import Guard
from guardsdk.policy import OnUnsafe
from guardsdk.service.batching import BatchingDetector, batch_lanes, coalesces
from guardsdk.service.config import ServiceConfig
from guardsdk.service.errors import ServiceError
from guardsdk.service.limits import AdmissionGate, Overloaded
from guardsdk.service.metrics import ServiceMetrics
from guardsdk.service.readiness import ServerProbe
from guardsdk.verdict import Failure, Verdict

T = TypeVar("T")
logger = logging.getLogger("guardsdk.service")


#: What a client reads of a backend failure: the failure's details (an internal URL, a server's raw error) stay in
#: the service log.
BACKEND_FAILED = "the guard backend failed (details in the service log)"


def failure_error(verdict: Verdict) -> ServiceError | None:
    """503 or 504 for a check left undecided by a failure (backend, deadline) and not allowed; else None (an unsafe
    finding in another window of the same check is a block, not a failure)."""
    decision = verdict.decision
    if verdict.failure is None or decision is None or decision.allowed or decision.unsafe:
        return None
    if verdict.failure is Failure.DEADLINE:
        return ServiceError(504, "guard_timeout", f"the guard did not decide in time; failing closed ({verdict.error})")
    return ServiceError(503, "guard_unavailable", f"{BACKEND_FAILED}; failing closed")


def shown(verdict: Verdict, config: ServiceConfig) -> dict[str, Any]:
    """A verdict as the service's answers show it. A verdict the policy did not allow keeps its labels, scores and
    decision, but not what the guard wrote (``raw``, ``reasoning``: reasoning guards quote and even continue the
    text they judge), unless the operator chose ``expose_reasoning``; a backend failure's details never leave."""
    data = verdict.to_json(withhold=verdict.allowed is not True and not config.expose_reasoning)
    if verdict.failure is Failure.BACKEND:
        data["error"] = BACKEND_FAILED
        data["decision"] = None if verdict.decision is None else verdict.decision.summary
    return data


@dataclass
class ServiceState:
    """The service's shared parts (one per app)."""

    guard: Guard
    config: ServiceConfig
    metrics: ServiceMetrics = field(init=False)
    gate: AdmissionGate | None = None
    proxy_gate: AdmissionGate | None = None  # the slots proxied calls and streams hold (the same, unless batching)
    ready: bool = False
    upstream: Any = None  # the proxy's AsyncOpenAI client of the upstream LLM
    client: Any = None  # the same, guarded
    batching: BatchingDetector | None = field(init=False, default=None)
    servers: ServerProbe = field(init=False)  # /readyz's probe of the guard's model servers

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(queue_depth=lambda: self._gates("waiting"),
                                      in_flight=lambda: self._gates("running"))  # fmt: skip
        self.servers = ServerProbe(self.guard.detector)
        batching = self.config.batch_max_items > 1
        if batching and not coalesces(self.guard.detector):
            batching = False
            logger.info("micro-batching off: %s runs its checks one after another", self.guard.detector.name)
        if batching:  # a twin whose detector coalesces concurrent checks (the cache stays)
            self.batching = BatchingDetector(self.guard.detector, window_s=self.config.batch_window_ms / 1000,
                                             max_items=self.config.batch_max_items,
                                             max_batches=batch_lanes(self.guard.detector, self.config.max_concurrency),
                                             on_batch=self.metrics.batch_size.observe,
                                             on_isolate=self.metrics.batch_isolations.inc)  # fmt: skip
            self.guard = self.guard.with_policy(self.guard.policy)
            self.guard.detector = self.batching
        # A list of this guard's own (a twin made by with_policy shares its original's list, and another app's).
        self.guard.observers = [*self.guard.observers, self.metrics.observe]

    @property
    def slots(self) -> int:
        """The check API's admission units: ``max_concurrency`` requests, or with batching, that many batches of
        ``batch_max_items`` checks (a request holds one unit per check: :meth:`weight`)."""
        return self.config.max_concurrency * (self.config.batch_max_items if self.batching else 1)

    def weight(self, checks: int) -> int:
        """The units of :attr:`slots` a check API request of ``checks`` checks holds: one per check with batching
        (at most a batch: a larger request runs alone), else one."""
        return min(max(checks, 1), self.config.batch_max_items) if self.batching else 1

    async def start(self) -> None:
        """Open the admission gates and start batching, in the serving event loop. With batching a check API
        request holds one of :attr:`slots`, while a proxied call or stream (which holds its slot for the whole
        upstream call) holds one of ``max_concurrency`` slots of the proxy, as without batching. A check API request
        holds :meth:`weight` units, so the queue fills, and 429 answers, as the checks pile up."""
        self.gate = AdmissionGate(self.slots, self.config.max_queue)
        self.proxy_gate = self.gate
        if self.batching is not None:
            self.proxy_gate = AdmissionGate(self.config.max_concurrency, self.config.max_queue)
            self.batching.start()

    async def stop(self) -> None:
        """Stop batching (batches in flight finish)."""
        if self.batching is not None:
            await self.batching.stop()

    def _gates(self, count: str) -> int:
        """Requests waiting or running at all gates."""
        gates = {id(g): g for g in (self.gate, self.proxy_gate) if g is not None}.values()
        return sum(getattr(g, count) for g in gates)

    def checking_guard(self, gates: Sequence[str] | None) -> Guard:
        """The guard of the check API: annotating (the verdict is the answer), with the request's gates (else the
        service's ``check_gates``, else the policy's)."""
        policy = dataclasses.replace(self.guard.policy, on_unsafe=OnUnsafe.ANNOTATE)
        gates = gates or self.config.check_gates
        if gates:
            policy = dataclasses.replace(policy, gates=frozenset(gates))
        return self.guard.with_policy(policy)

    async def admitted(
        self, work: Callable[[], Awaitable[T]], on_deadline: Callable[[], T], *, proxy: bool = False, checks: int = 1
    ) -> T:
        """``work()`` once a slot is free (of the proxy's gate where ``proxy``; else :meth:`weight` units for its
        ``checks``), all within the request deadline; past it, ``on_deadline()``.
        Raises 429 when every slot is busy and the queue is full. Every guard check ``work`` starts ends by the
        request deadline too (:func:`~guardsdk.deadline.checks_deadline`): its model work stops there, so a request
        answered 504 leaves no work behind that holds the guard (and its slot is held until the work ends)."""
        gate = self.proxy_gate if proxy else self.gate
        assert gate is not None, "the service is not started"
        deadline = time.monotonic() + self.config.request_timeout_s

        async def run() -> T:
            async with gate.admit(1 if proxy else self.weight(checks)):
                with checks_deadline(deadline - time.monotonic()):
                    return await work()

        try:
            return await asyncio.wait_for(run(), self.config.request_timeout_s)
        except Overloaded:
            self.metrics.overloaded.inc()
            raise ServiceError(429, "overloaded", "every guard slot is busy and the queue is full; retry later",
                               headers={"Retry-After": "1"}) from None  # fmt: skip
        except asyncio.TimeoutError:
            self.metrics.deadlines.inc()
            return on_deadline()

    def deadline_verdicts(self, pairs: Sequence[tuple[str, str | None]], guard: Guard) -> list[Verdict]:
        """Undecided verdicts (decided by ``guard``'s policy: failing closed) for checks past the request deadline."""
        error = f"request ran past its deadline of {self.config.request_timeout_s:g}s"
        return [guard.decide(Verdict.undecided(has_response=r is not None, error=error, failure=Failure.DEADLINE))
                for _, r in pairs]  # fmt: skip
